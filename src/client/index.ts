// Public surface of the daemon client.
export { UnikClient, ImagesApi, InstancesApi, normalizeBaseUrl } from './client.js';
export type { BuildOptions, BuildProgress, ClientOptions, LogsOptions } from './client.js';
export { UnikApiError, DaemonUnreachableError } from './errors.js';
export { packDirectory, PackError } from './tarball.js';

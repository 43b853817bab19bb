// Public surface of the daemon client.
export { UnikClient, ImagesApi, InstancesApi, VolumesApi, normalizeBaseUrl } from './client.js';
export type { BuildOptions, BuildProgress, ClientOptions, CreateVolumeOptions, LogsOptions } from './client.js';
export { UnikApiError, DaemonUnreachableError } from './errors.js';
export { packDirectory, PackError } from './tarball.js';

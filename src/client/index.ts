// Public surface of the daemon client.
export { UnikClient, ImagesApi, InstancesApi, VolumesApi, normalizeBaseUrl } from './client.js';
export type { BuildOptions, BuildProgress, ClientOptions, CreateVolumeOptions, LogsOptions } from './client.js';
export { HubApi, REGISTRY_AUTH_HEADER, decodeRegistryAuth, encodeRegistryAuth, localNameOf } from './hub.js';
export type { HubProgress, LoginOptions, PullOptions, PushOptions, PushResult, RegistryAuth, SearchOptions, SearchResult } from './hub.js';
export { UnikApiError, DaemonUnreachableError } from './errors.js';
export { packDirectory, PackError } from './tarball.js';

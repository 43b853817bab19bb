// Every media type and annotation key of unik's OCI artifact, in one place.

export const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** What a registry GET of a manifest must accept (distribution 2.8 answers 404 otherwise). */
export const MANIFEST_ACCEPT = [MT.manifest, MT.index, MT.dockerManifest, MT.dockerList].join(', ');

export const ANNOTATIONS = {
  created: 'org.opencontainers.image.created',
  title: 'org.opencontainers.image.title',
  description: 'org.opencontainers.image.description',
  version: 'org.opencontainers.image.version',
  unikLanguage: 'sh.unik.image.language',
  unikBase: 'sh.unik.image.base',
  unikCompiler: 'sh.unik.image.compiler',
  unikKernelConfig: 'sh.unik.kernel.config-hash',
  unikMountPoints: 'sh.unik.image.mount-points',
  // urunc's keys (github.com/urunc-dev/urunc docs/package), so a urunc runtime can boot it too
  uruncType: 'com.urunc.unikernel.unikernelType',
  uruncHypervisor: 'com.urunc.unikernel.hypervisor',
  uruncBinary: 'com.urunc.unikernel.binary',
  uruncCmdline: 'com.urunc.unikernel.cmdline',
  uruncInitrd: 'com.urunc.unikernel.initrd',
} as const;

/** Where the files sit inside the image's root filesystem once a runtime unpacks it. */
export const LAYOUT = {
  kernel: 'unik/kernel',
  root: 'unik/root.cpio',
  manifest: 'unik/manifest.json',
  urunc: 'urunc.json',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

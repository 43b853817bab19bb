import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where unik keeps everything: UNIK_HOME, default ~/.unik. */
export interface UnikPaths {
  home: string;
  db: string;
  images: string;
  instances: string;
  volumes: string;
  /** kernel build cache, by config hash; UNIK_KERNEL_CACHE lets several homes share one */
  kernels: string;
  /** build caches (guest init, Go build cache) */
  cache: string;
  tmp: string;
  /** control sockets live apart, with short names: UNIX socket paths are limited to 107 bytes */
  sockets: string;
}

export function unikPaths(home = process.env.UNIK_HOME || join(homedir(), '.unik')): UnikPaths {
  return {
    home,
    db: join(home, 'state.db'),
    images: join(home, 'images'),
    instances: join(home, 'instances'),
    volumes: join(home, 'volumes'),
    kernels: process.env.UNIK_KERNEL_CACHE || join(home, 'kernels'),
    cache: join(home, 'cache'),
    tmp: join(home, 'tmp'),
    sockets: join(home, 'sock'),
  };
}

import type { HostCheck, ImageRecord, InstanceRecord, InstanceSpec, VolumeMount } from '../model/types.js';
import type { Arch } from '../model/arch.js';

/** A VM's interface on a bridged network: its tap on the bridge and the address its guest takes. */
export interface BridgedNic {
  bridge: string;
  tap: string;
  /** A.B.C.D/PREFIX */
  ip: string;
  gateway: string;
  dns: string;
  mac: string;
}

/** What an instance is attached to when it boots. */
export interface Attachments {
  volumes: VolumeMount[];
  /** absent: QEMU's user-mode network */
  nic?: BridgedNic;
}

export interface ProviderInfo {
  name: string;
  infrastructure: string;
  available: boolean;
  /** why it is unavailable, or details such as the accelerator in use */
  reason: string;
  /** when unavailable: the command (or action) that makes it work */
  fix?: string;
}

/** What the provider sees of a VM right now; core turns it into an instance state. */
export interface Observed {
  alive: boolean;
  /** the guest init started the app */
  ready: boolean;
  /** the app's exit status, as the guest init reported it */
  exitCode: number | null;
  /** when the guest init said the app started (ISO 8601), where the provider knows it */
  readyAt?: string;
}

/** Providers are plug-ins behind this interface; the daemon never imports a concrete one. */
export interface Provider {
  name: string;
  infrastructure: string;
  /** kernel fragments every image for this provider needs beside its app's (e.g. a PC's devices) */
  readonly kernelFragments?: readonly string[];
  /** the architectures whose images it runs */
  readonly arches: readonly Arch[];
  info(): Promise<ProviderInfo>;
  /**
   * What `unik doctor` says of it, when one line from info() is not enough (the QEMU provider:
   * each architecture's QEMU, the accelerator and why, the confinement). No changes on the host.
   */
  checks?(): Promise<HostCheck[]>;
  /** Checks what can be checked before anything is created (e.g. host ports are free). */
  preflight(spec: InstanceSpec): Promise<void>;
  /**
   * Boots the VM with its volumes and network; resolves once it is running, or throws why it
   * could not start. `boot`: restored from a boot snapshot, or booted cold (the default).
   */
  start(inst: InstanceRecord, image: ImageRecord, attach: Attachments, onExit: () => void): Promise<{ pid: number; accel: string; boot?: 'restore' | 'cold' }>;
  /** The host process that holds the VM's memory (QEMU's), while it runs, for its RSS. */
  vmPid?(inst: InstanceRecord): number | undefined;
  /** Asks the app to stop, waits up to graceMs, then kills the VM. Resolves once it is gone. */
  stop(inst: InstanceRecord, graceMs: number): Promise<void>;
  /** Passes a signal to the app through the guest init; SIGKILL ends the VM at once. */
  signal(inst: InstanceRecord, signal: number): Promise<void>;
  inspect(inst: InstanceRecord): Promise<Observed>;
  /** Optional warm-up for a new image, in the background (never throws): e.g. its boot snapshot. */
  prepare?(image: ImageRecord): void;
  /** Optional: ends what the provider keeps running for itself (not the VMs), at the daemon's close. */
  close?(): void;
  /** Optional, at the daemon's start, in the background (never throws): what the first run of these stored images would otherwise wait for. */
  warmUp?(images: ImageRecord[]): void;
  /**
   * After a daemon restart, for an instance whose start was under way: its VM if it came up
   * (the daemon then keeps it), else undefined (the daemon undoes the start).
   */
  adopt?(inst: InstanceRecord): Promise<{ pid: number; accel: string } | undefined>;
  /** Ends whatever VM a folder with no record holds (found on start-up), before it is deleted. */
  abandon?(dir: string): Promise<void>;
  logFile(inst: InstanceRecord): string;
  /** Removes the instance's files (the VM must be gone). */
  remove(inst: InstanceRecord): Promise<void>;
}

// The four lists: instances (with their actions), images, volumes, networks.
import type { ImageJson, InstanceJson, NetworkJson, PortMapping, VolumeJson } from '../api/types.js';
import { h, syncRows } from './dom.js';

const tbody = (section: string) => document.querySelector<HTMLTableSectionElement>(`#${section} tbody`)!;
const time = (iso: string | null) => (iso ? new Date(iso).toLocaleTimeString([], { hourCycle: 'h23' }) : '');
const date = (iso: string) => new Date(iso).toLocaleString([], { dateStyle: 'short', timeStyle: 'short', hourCycle: 'h23' });
const live = (i: InstanceJson) => i.State === 'running' || i.State === 'pending';

export interface InstanceActions {
  console(i: InstanceJson): HTMLButtonElement;
  stop(i: InstanceJson): HTMLButtonElement;
  start(i: InstanceJson): HTMLButtonElement;
  remove(i: InstanceJson): HTMLButtonElement;
}

/** A published port as a link the browser can follow (TCP on loopback or every address: this host's name). */
function portCell(p: PortMapping): Node {
  const label = `${p.HostIp || '0.0.0.0'}:${p.HostPort} → ${p.GuestPort}${p.Protocol === 'udp' ? '/udp' : ''}`;
  if (p.Protocol === 'udp') return h('span', { class: 'mono' }, label);
  const local = ['', '0.0.0.0', '::', '127.0.0.1', '::1'].includes(p.HostIp);
  const host = local ? location.hostname : p.HostIp.includes(':') ? `[${p.HostIp}]` : p.HostIp;
  return h('a', { class: 'mono', href: `http://${host}:${p.HostPort}/`, target: '_blank', rel: 'noopener noreferrer' }, label);
}

export function renderInstances(list: InstanceJson[], act: InstanceActions): void {
  syncRows(tbody('instances'), list, {
    key: (i) => i.Id,
    sig: (i) => JSON.stringify([i.Name, i.ImageName, i.State, i.Error, i.ExitCode, i.Ports, i.IpAddress, i.Network, i.StartedAt]),
    empty: 'no instances: run one from an image',
    row: (i) => {
      const tr = h(
        'tr',
        { 'data-name': i.Name, 'data-state': i.State },
        h('td', {}, i.Name, h('span', { class: 'sub mono' }, i.Id.slice(0, 12))),
        h('td', {}, i.ImageName),
        h(
          'td',
          {},
          h('span', { class: `state ${i.State}` }, i.State),
          live(i) && i.StartedAt ? h('span', { class: 'sub' }, `since ${time(i.StartedAt)}`) : null,
          i.State === 'stopped' && i.ExitCode !== null ? h('span', { class: 'sub' }, `exit ${i.ExitCode}`) : null,
          i.Error ? h('span', { class: 'sub error' }, i.Error) : null,
        ),
        h(
          'td',
          {},
          ...i.Ports.map((p) => h('div', {}, portCell(p))),
          i.Network !== 'user' && i.IpAddress ? h('span', { class: 'sub mono' }, `${i.IpAddress} on ${i.Network}`) : null,
        ),
        h('td', { class: 'actions' }, act.console(i), live(i) ? act.stop(i) : act.start(i), act.remove(i)),
      );
      return tr;
    },
  });
}

export function renderImages(list: ImageJson[], act: { run(i: ImageJson): HTMLButtonElement; remove(i: ImageJson): HTMLButtonElement }): void {
  syncRows(tbody('images'), list, {
    key: (i) => i.Id,
    sig: (i) => JSON.stringify([i.Name, i.Language, i.Architecture, i.SizeBytes, i.Created]),
    empty: 'no images: build one',
    row: (i) =>
      h(
        'tr',
        { 'data-name': i.Name },
        h('td', {}, i.Name, h('span', { class: 'sub mono' }, i.Id.slice(0, 12))),
        h('td', {}, i.Language),
        h('td', {}, i.Architecture ?? 'amd64'),
        h('td', {}, `${(i.SizeBytes / 1048576).toFixed(1)} MB`),
        h('td', {}, date(i.Created)),
        h('td', { class: 'actions' }, act.run(i), act.remove(i)),
      ),
  });
}

export function renderVolumes(list: VolumeJson[]): void {
  syncRows(tbody('volumes'), list, {
    key: (v) => v.Id,
    sig: (v) => JSON.stringify(v),
    empty: 'no volumes',
    row: (v) =>
      h(
        'tr',
        { 'data-name': v.Name },
        h('td', {}, v.Name, v.Error ? h('span', { class: 'sub error' }, v.Error) : null),
        h('td', {}, v.Type),
        h('td', {}, `${v.SizeMb} MB`),
        h('td', {}, v.AttachedInstanceName ? `${v.AttachedInstanceName}:${v.MountPoint}` : ''),
      ),
  });
}

export function renderNetworks(list: NetworkJson[]): void {
  syncRows(tbody('networks'), list, {
    key: (n) => n.Id,
    sig: (n) => JSON.stringify(n),
    empty: 'no bridged networks (instances use user-mode networking)',
    row: (n) => {
      const c = n.IPAM.Config[0];
      return h('tr', { 'data-name': n.Name }, h('td', {}, n.Name), h('td', { class: 'mono' }, c?.Subnet ?? ''), h('td', { class: 'mono' }, c?.Gateway ?? ''), h('td', {}, String(Object.keys(n.Containers ?? {}).length)));
    },
  });
}

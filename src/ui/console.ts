// The live console of one instance: GET /instances/:id/logs?follow=true streams the serial
// console until the instance stops; the text goes through ConsoleText into text nodes only.
// When the stream ends (the instance stopped) and the instance runs again, it is followed anew.
import type { InstanceJson } from '../api/types.js';
import { call, describe, seg, textChunks } from './api.js';
import { $ } from './dom.js';
import { ConsoleText } from './terminal.js';

/** the most text kept on the page; older output is cut (the whole log stays on the daemon) */
const KEEP = 512 * 1024;

export class ConsoleView {
  private readonly box = $('#console');
  private readonly pre = $<HTMLPreElement>('#console-text');
  private readonly title = $('#console-title');
  private readonly status = $('#console-status');
  private id: string | undefined;
  private ctl: AbortController | undefined;
  private following = false;
  /** the StartedAt of the run whose console ended (undefined: follow again at the next poll) */
  private ended: string | null | undefined;
  private started: string | null = null;

  constructor() {
    $('#console-close').addEventListener('click', () => this.close());
  }

  /** Shows an instance's console (again from its first line). */
  open(inst: InstanceJson): void {
    if (this.id === inst.Id && this.following) return;
    this.close();
    this.id = inst.Id;
    this.box.hidden = false;
    this.title.textContent = inst.Name;
    this.started = inst.StartedAt;
    void this.follow(inst.Id);
  }

  close(): void {
    this.ctl?.abort();
    this.ctl = undefined;
    this.id = undefined;
    this.following = false;
    this.ended = undefined;
    this.box.hidden = true;
  }

  /** From each poll: an instance that runs again is followed again; a deleted one closes. */
  update(list: InstanceJson[]): void {
    if (!this.id) return;
    const inst = list.find((i) => i.Id === this.id);
    if (!inst) {
      this.close();
      return;
    }
    this.started = inst.StartedAt;
    // a stop and a start make a new run, with a new StartedAt
    if (!this.following && (inst.State === 'running' || inst.State === 'pending') && inst.StartedAt !== this.ended) void this.follow(inst.Id);
  }

  private async follow(id: string): Promise<void> {
    const ctl = new AbortController();
    this.ctl = ctl;
    this.following = true;
    this.pre.textContent = '';
    this.status.textContent = 'following…';
    const text = new ConsoleText();
    try {
      const res = await call(`/instances/${seg(id)}/logs?follow=true`, { accept: 'text/plain', signal: ctl.signal });
      for await (const chunk of textChunks(res)) this.append(text.push(chunk));
      this.append(text.end());
      this.ended = this.started;
      this.status.textContent = 'the instance is not running: the console ends here (it follows again when the instance starts)';
    } catch (e) {
      if (ctl.signal.aborted) return;
      this.ended = undefined;
      this.status.textContent = `the console could not be read: ${describe(e)}`;
    }
    if (this.ctl === ctl) this.following = false;
  }

  private append(s: string): void {
    if (!s) return;
    const pre = this.pre;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(s);
    if ((pre.textContent?.length ?? 0) > KEEP) pre.textContent = '…\n' + pre.textContent!.slice(-KEEP / 2);
    else if (pre.childNodes.length > 500) pre.normalize();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }
}

// Build from the page: a folder (packed here into a .tar.gz, see tar.ts) or a .tar/.tar.gz as
// it is, POSTed as the multipart "tarfile" with Accept: application/x-ndjson, so the daemon's
// steps show as they happen; the last line is the image or the error.
import type { BuildEvent, ImageJson } from '../api/types.js';
import { call, describe, jsonLines, seg } from './api.js';
import { $, h } from './dom.js';
import { folderFiles, gzip, tarOf } from './tar.js';

export function setupBuild(onBuilt: (img: ImageJson) => void): void {
  const form = $<HTMLFormElement>('#build-form');
  const name = $<HTMLInputElement>('#build-name');
  const folder = $<HTMLInputElement>('#build-folder');
  const tarInput = $<HTMLInputElement>('#build-tar');
  const submit = $<HTMLButtonElement>('#build-submit');
  const log = $<HTMLOListElement>('#build-log');
  const bar = $<HTMLProgressElement>('#build-bar');
  const result = $('#build-result');

  // one source at a time; the image is named after it unless a name was typed
  const suggest = (n: string) => {
    if (!name.value) name.value = n.replace(/\.(tar\.gz|tgz|tar|gz)$/i, '').replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  };
  folder.addEventListener('change', () => {
    tarInput.value = '';
    const first = folder.files?.[0];
    if (first) suggest(first.webkitRelativePath.split('/')[0] ?? '');
  });
  tarInput.addEventListener('change', () => {
    folder.value = '';
    const f = tarInput.files?.[0];
    if (f) suggest(f.name);
  });

  const line = (cls: string, ...parts: (string | Node)[]) => {
    log.append(h('li', { class: cls }, ...parts));
    log.scrollTop = log.scrollHeight;
  };
  const finish = (ok: boolean, text: string) => {
    result.className = ok ? 'ok' : 'bad';
    result.textContent = text;
    bar.hidden = true;
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      const image = name.value.trim();
      submit.disabled = true;
      log.replaceChildren();
      result.textContent = '';
      result.className = '';
      bar.hidden = false;
      bar.removeAttribute('value');
      const t0 = performance.now();
      const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
      try {
        let body: Blob;
        let fileName: string;
        if (folder.files?.length) {
          const files = folderFiles(folder.files);
          if (!files.length) throw new Error('the folder has no files to send');
          line('local', h('span', { class: 'step' }, 'pack'), `${files.length} files from the folder`);
          body = await gzip(tarOf(files));
          fileName = 'app.tar.gz';
        } else if (tarInput.files?.[0]) {
          body = tarInput.files[0];
          fileName = tarInput.files[0].name;
        } else throw new Error('pick an app folder, or a .tar / .tar.gz of it');
        line('local', h('span', { class: 'step' }, 'upload'), `${(body.size / 1024).toFixed(1)} KB`);
        const q = new URLSearchParams();
        const lang = $<HTMLSelectElement>('#build-lang').value;
        const args = $<HTMLInputElement>('#build-args').value.trim();
        if (lang) q.set('lang', lang);
        if (args) q.set('args', args);
        if ($<HTMLInputElement>('#build-force').checked) q.set('force', 'true');
        const upload = new FormData();
        upload.append('tarfile', body, fileName);
        const res = await call(`/images/${seg(image)}/create${q.size ? `?${q}` : ''}`, { method: 'POST', body: upload, accept: 'application/x-ndjson' });
        for await (const ev of jsonLines(res)) {
          const e = ev as BuildEvent;
          if ('Progress' in e) {
            const p = e.Progress;
            line('progress', h('span', { class: 'step' }, p.Step), p.Message, p.Percent === undefined ? '' : ` (${Math.round(p.Percent)}%)`);
            if (p.Percent !== undefined) bar.value = p.Percent;
          } else if ('Image' in e) {
            finish(true, `✓ built ${e.Image.Name}: ${e.Image.Language}, ${(e.Image.SizeBytes / 1048576).toFixed(1)} MB, in ${secs()}`);
            onBuilt(e.Image);
            return;
          } else if ('Error' in e) {
            throw new Error(e.Error.hint ? `${e.Error.message} (${e.Error.hint})` : e.Error.message);
          }
        }
        throw new Error('the daemon ended the build without a result');
      } catch (e) {
        finish(false, `✗ ${describe(e)}`);
      } finally {
        submit.disabled = false;
      }
    })();
  });
}

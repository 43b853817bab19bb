import { Agent } from 'undici';

// A fetch dispatcher without undici's 300 s header/body timeouts, for calls that legitimately
// stay quiet for minutes: a synchronous build (no headers until the kernel is compiled) and
// `logs --follow` on a silent instance. Node 20's fetch is undici 6; the package of the same
// major provides its Agent class.
let patient: Agent | undefined;

export function patientDispatcher(): Agent {
  patient ??= new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  return patient;
}

/**
 * The requests the real Python client (filetracker 2.3.1, requests 2.28.1) sent, byte for
 * byte, as captured in shared/wire/python-client-2.3.1.md; only `Host` is ours.
 */

/** The gzip body of both uploads (52 bytes; 87 bytes uncompressed). */
export const WIRE_BODY = Buffer.from(
  'H4sIABe6BmsC/8tIzcnJV0grys9VKMlIVSioLMnIz1NIzslMzSvhyiBbEgCQGWl2VwAAAA==',
  'base64',
);
export const WIRE_CHECKSUM = 'f1492f18c6e3615e7b8dfb491fa3ca64af3076683a406ed114ab3c48421e9335';
export const WIRE_LOGICAL_SIZE = 87;
/** `/wire/dir one/zażółć.txt@1700000000` (Tue, 14 Nov 2023 22:13:20). */
export const WIRE_VERSION = 1_700_000_000;
/** The client's clock when it uploaded `/wire/now.txt`: Wed, 25 Nov 2026 10:36:07. */
export const WIRE_NOW = Date.UTC(2026, 10, 25, 10, 36, 7) / 1000;

export const WIRE_FILE = '/wire/dir%20one/za%C5%BC%C3%B3%C5%82%C4%87.txt';
const Q_FILE = '?last_modified=Tue%2C+14+Nov+2023+22%3A13%3A20+-0000';
const Q_NOW = '?last_modified=Wed%2C+25+Nov+2026+10%3A36%3A07+-0000';

export interface WireRequest {
  /** What the client was doing. */
  label: string;
  method: string;
  bytes: Buffer;
}

function request(
  method: string,
  target: string,
  host: string,
  extra: string[] = [],
  body?: Buffer,
): WireRequest {
  const head = [
    `${method} ${target} HTTP/1.1`,
    `Host: ${host}`,
    'User-Agent: python-requests/2.28.1',
    'Accept-Encoding: gzip, deflate',
    'Accept: */*',
    'Connection: keep-alive',
    ...extra,
  ].join('\r\n');
  const bytes = Buffer.concat([Buffer.from(head + '\r\n\r\n', 'latin1'), body ?? Buffer.alloc(0)]);
  return { label: `${method} ${target}`, method, bytes };
}

/**
 * One run of the capture. `slash`: the base URL had a trailing slash, so every path starts
 * with `//`. `host` replaces `HOST:PORT`.
 */
export function wireRun(slash: boolean, host: string): WireRequest[] {
  const p = slash ? '/' : '';
  const upload = [
    `SHA256-Checksum: ${WIRE_CHECKSUM}`,
    'Content-Encoding: gzip',
    `Logical-Size: ${WIRE_LOGICAL_SIZE}`,
    `Content-Length: ${WIRE_BODY.length}`,
  ];
  return [
    request('GET', `${p}/version/`, host),
    request('PUT', `${p}/files${WIRE_FILE}${Q_FILE}`, host, upload, WIRE_BODY),
    request('PUT', `${p}/files/wire/now.txt${Q_NOW}`, host, upload, WIRE_BODY),
    request('HEAD', `${p}/files${WIRE_FILE}`, host),
    request('HEAD', `${p}/files${WIRE_FILE}`, host),
    request('GET', `${p}/files${WIRE_FILE}`, host),
    request('GET', `${p}/list/wire${Q_NOW}`, host),
    request('DELETE', `${p}/files/wire/now.txt${Q_NOW}`, host, ['Content-Length: 0']),
    request('GET', `${p}/files/wire/missing.txt`, host),
    request('HEAD', `${p}/files/wire/missing.txt`, host),
  ];
}

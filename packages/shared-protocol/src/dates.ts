import { BadRequestError } from './errors.js';

/**
 * Versions are whole seconds since the Unix epoch; on the wire they are RFC 2822 dates.
 * We emit IMF-fixdate and accept what Python's `email.utils.parsedate_tz` accepts in
 * practice (PROTOCOL.md "Versions and dates").
 */

const MONTHS = [
  'jan',
  'feb',
  'mar',
  'apr',
  'may',
  'jun',
  'jul',
  'aug',
  'sep',
  'oct',
  'nov',
  'dec',
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
/** Zone names parsedate_tz knows, as +hhmm numbers. */
const ZONES: Record<string, number> = {
  UT: 0,
  UTC: 0,
  GMT: 0,
  Z: 0,
  AST: -400,
  ADT: -300,
  EST: -500,
  EDT: -400,
  CST: -600,
  CDT: -500,
  MST: -700,
  MDT: -600,
  PST: -800,
  PDT: -700,
};

function bad(value: string): BadRequestError {
  return new BadRequestError('BAD_DATE', `Unparsable date: ${JSON.stringify(value).slice(0, 80)}`);
}

function toInt(s: string, value: string): number {
  if (!/^[+-]?\d+$/.test(s)) throw bad(value);
  return Number(s);
}

/**
 * The two forms that nearly every date on the wire takes: IMF-fixdate (`Wed, 25 Nov 2026
 * 10:15:08 GMT`, ours and HTTP's) and the Python client's `formatdate()` (the same with a
 * numeric zone, `-0000`). Every PUT and DELETE parses one, and the general parser below
 * took about 13 us of a small PUT's main-thread CPU (issue 19); this takes about 1.
 */
const COMMON_DATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d\d):(\d\d):(\d\d) (GMT|[+-]\d{4})$/;
const MONTH_OF: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

/**
 * A date in one of the {@link COMMON_DATE} forms, read to the same second as the general
 * parser reads it (fields rolled over alike: day 31 of a short month, 24:00:00, a leap
 * second); undefined for anything else, out-of-range fields included, which the general
 * parser then reads or refuses.
 */
function parseCommonDate(value: string): number | undefined {
  const m = COMMON_DATE.exec(value);
  if (m === null) return undefined;
  const [day, year, hh, mi, ss] = [m[1], m[3], m[4], m[5], m[6]].map(Number) as number[];
  if (day! < 1 || day! > 31 || hh! > 24 || mi! > 59 || ss! > 61 || year! < 100) return undefined;
  const zone = m[7]!;
  const offset = zone === 'GMT' ? 0 : Number(zone);
  const abs = Math.abs(offset);
  const offsetSeconds = Math.sign(offset) * (Math.floor(abs / 100) * 3600 + (abs % 100) * 60);
  // Date.UTC reads years 0-99 as 1900-1999: those went to the general parser.
  const ms = Date.UTC(year!, MONTH_OF[m[2]!]!, day, hh, mi, ss);
  return Math.floor(ms / 1000) - offsetSeconds;
}

/** Parses an RFC 2822-ish date into whole seconds since the epoch; throws a 400 error. */
export function parseHttpDate(value: string): number {
  const common = parseCommonDate(value);
  if (common !== undefined) return common;
  let data = value
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '');
  if (data.length === 0) throw bad(value);
  // A day name, possibly glued to the day by a comma ("Wed,25 Nov ..."), is skipped.
  if (data[0]!.endsWith(',') || DAYS.includes(data[0]!.toLowerCase())) {
    data.shift();
  } else {
    const comma = data[0]!.lastIndexOf(',');
    if (comma >= 0) data[0] = data[0]!.slice(comma + 1);
  }
  if (data.length === 3) {
    // RFC 850: "25-Nov-26 10:15:08 GMT".
    const stuff = data[0]!.split('-');
    if (stuff.length === 3) data = [...stuff, ...data.slice(1)];
  }
  if (data.length === 4) {
    const s = data[3]!;
    let i = s.indexOf('+');
    if (i === -1) i = s.indexOf('-');
    if (i > 0) data = [...data.slice(0, 3), s.slice(0, i), s.slice(i)];
    else data.push('');
  }
  if (data.length < 5) throw bad(value);
  let [dd, mm, yy, tm, tz] = data.slice(0, 5) as [string, string, string, string, string];
  if (!dd || !mm || !yy) throw bad(value);
  mm = mm.toLowerCase();
  if (!MONTHS.includes(mm)) {
    [dd, mm] = [mm, dd.toLowerCase()];
    if (!MONTHS.includes(mm)) throw bad(value);
  }
  let month = MONTHS.indexOf(mm) + 1;
  if (month > 12) month -= 12;
  if (dd.endsWith(',')) dd = dd.slice(0, -1);
  if (yy.indexOf(':') > 0) [yy, tm] = [tm, yy];
  if (yy.endsWith(',')) {
    yy = yy.slice(0, -1);
    if (!yy) throw bad(value);
  }
  if (!/^\d/.test(yy)) [yy, tz] = [tz, yy];
  if (tm.endsWith(',')) tm = tm.slice(0, -1);
  let parts = tm.split(':');
  if (parts.length === 1 && parts[0]!.includes('.')) parts = parts[0]!.split('.');
  if (parts.length === 2) parts.push('0');
  if (parts.length !== 3) throw bad(value);
  let year = toInt(yy, value);
  const day = toInt(dd, value);
  const [hh, mi, ss] = parts.map((p) => toInt(p, value)) as [number, number, number];
  if (year < 100) year += year > 68 ? 1900 : 2000;
  // Ours: out-of-range fields are refused rather than wrapped around.
  if (day < 1 || day > 31 || hh > 24 || mi > 59 || ss > 61 || hh < 0 || mi < 0 || ss < 0) {
    throw bad(value);
  }
  let offset = 0;
  const zone = tz.toUpperCase();
  if (zone in ZONES) {
    offset = ZONES[zone]!;
  } else if (/^[+-]?\d+$/.test(zone)) {
    offset = Number(zone);
  } else if (zone !== '') {
    // parsedate_tz ignores a zone it cannot read; so do we (= UTC).
    offset = 0;
  }
  const sign = offset < 0 ? -1 : 1;
  const abs = Math.abs(offset);
  const offsetSeconds = sign * (Math.floor(abs / 100) * 3600 + (abs % 100) * 60);
  // Not Date.UTC: it reads years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hh, mi, ss, 0);
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw bad(value);
  return Math.floor(ms / 1000) - offsetSeconds;
}

/** Formats a version as an IMF-fixdate: `Wed, 25 Nov 2026 10:15:08 GMT`. */
export function formatHttpDate(version: number): string {
  return new Date(version * 1000).toUTCString();
}

/** The version a client without `@version` would send: now, in whole seconds. */
export function nowVersion(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * The last second an IMF-fixdate can carry (`Fri, 31 Dec 9999 23:59:59 GMT`): as a list
 * cutoff it hides no file, however far ahead a client's clock put its version (ft-migrate
 * --from copies every file, PROTOCOL.md `/list`).
 */
export const LATEST_DATE_VERSION = 253_402_300_799;

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FiletrackerError,
  formatHttpDate,
  nowVersion,
  parseHttpDate,
} from '@filetracker/shared-protocol';
import { between, pick, prng } from './helpers/fault-prng.js';

const HOUR = 3600;

/** Seconds since the epoch, computed apart from the code under test. */
function utc(year: number, month: number, day: number, h = 0, m = 0, s = 0): number {
  return Date.UTC(year, month - 1, day, h, m, s) / 1000;
}

/** 25 Nov 2026 10:15:08 UTC, the date of the wire capture. */
const T = utc(2026, 11, 25, 10, 15, 8);

describe('parseHttpDate (PROTOCOL.md "Versions and dates")', () => {
  it("reads the Python client's formatdate form with -0000", () => {
    assert.equal(parseHttpDate('Wed, 25 Nov 2026 10:15:08 -0000'), T);
    // Both dates of the wire capture, whose versions are known.
    assert.equal(parseHttpDate('Tue, 14 Nov 2023 22:13:20 -0000'), 1_700_000_000);
  });

  it("reads the IMF-fixdate of lighttpd's Last-Modified", () => {
    assert.equal(parseHttpDate('Fri, 14 Jul 2017 02:40:00 GMT'), 1_500_000_000);
  });

  it('reads GMT, UT, UTC and Z as UTC, in any case', () => {
    for (const zone of ['GMT', 'UT', 'UTC', 'Z', 'gmt', 'utc', '+0000']) {
      assert.equal(parseHttpDate(`Wed, 25 Nov 2026 10:15:08 ${zone}`), T, zone);
    }
  });

  it('reads the US zone names', () => {
    const offsets: Record<string, number> = {
      AST: -4,
      ADT: -3,
      EST: -5,
      EDT: -4,
      CST: -6,
      CDT: -5,
      MST: -7,
      MDT: -6,
      PST: -8,
      PDT: -7,
    };
    for (const [zone, hours] of Object.entries(offsets)) {
      assert.equal(parseHttpDate(`Wed, 25 Nov 2026 10:15:08 ${zone}`), T - hours * HOUR, zone);
    }
  });

  it('reads numeric zones, with minutes', () => {
    assert.equal(parseHttpDate('Wed, 25 Nov 2026 10:15:08 +0200'), T - 2 * HOUR);
    assert.equal(parseHttpDate('Wed, 25 Nov 2026 10:15:08 -0500'), T + 5 * HOUR);
    assert.equal(parseHttpDate('Wed, 25 Nov 2026 10:15:08 +0530'), T - 5.5 * HOUR);
    assert.equal(parseHttpDate('Wed, 25 Nov 2026 10:15:08 -0130'), T + 1.5 * HOUR);
  });

  it('reads a zone glued to the time', () => {
    assert.equal(parseHttpDate('25 Nov 2026 10:15:08+0200'), T - 2 * HOUR);
  });

  it('reads a date without a zone as UTC', () => {
    assert.equal(parseHttpDate('Wed, 25 Nov 2026 10:15:08'), T);
  });

  it('reads a date without a weekday, or with a wrong one', () => {
    assert.equal(parseHttpDate('25 Nov 2026 10:15:08 GMT'), T);
    assert.equal(parseHttpDate('Mon, 25 Nov 2026 10:15:08 GMT'), T);
    assert.equal(parseHttpDate('Wed,25 Nov 2026 10:15:08 GMT'), T);
  });

  it('reads single-digit days', () => {
    assert.equal(parseHttpDate('Sun, 1 Nov 2026 10:15:08 GMT'), utc(2026, 11, 1, 10, 15, 8));
    assert.equal(parseHttpDate('5 Jan 2027 00:00:00 GMT'), utc(2027, 1, 5));
  });

  it('reads 2-digit years as Python does: 69-99 are 19xx, 00-68 are 20xx', () => {
    assert.equal(parseHttpDate('Tue, 25 Nov 69 10:15:08 GMT'), utc(1969, 11, 25, 10, 15, 8));
    assert.equal(parseHttpDate('Sat, 25 Nov 68 10:15:08 GMT'), utc(2068, 11, 25, 10, 15, 8));
    assert.equal(parseHttpDate('25 Nov 99 10:15:08 GMT'), utc(1999, 11, 25, 10, 15, 8));
    assert.equal(parseHttpDate('25 Nov 00 10:15:08 GMT'), utc(2000, 11, 25, 10, 15, 8));
    assert.equal(parseHttpDate('25 Nov 26 10:15:08 GMT'), T);
  });

  it('reads a time without seconds', () => {
    assert.equal(parseHttpDate('Wed, 25 Nov 2026 10:15 GMT'), utc(2026, 11, 25, 10, 15));
    assert.equal(parseHttpDate('Wed, 25 Nov 2026 10:15'), utc(2026, 11, 25, 10, 15));
  });

  it('reads the RFC 850 form', () => {
    assert.equal(parseHttpDate('Wednesday, 25-Nov-26 10:15:08 GMT'), T);
  });

  it('reads the asctime form', () => {
    assert.equal(parseHttpDate('Wed Nov 25 10:15:08 2026'), T);
    assert.equal(parseHttpDate('Thu Nov  5 10:15:08 2026'), utc(2026, 11, 5, 10, 15, 8));
  });

  it('reads full month names, the month before the day, and dotted times', () => {
    assert.equal(parseHttpDate('25 November 2026 10:15:08 GMT'), T);
    assert.equal(parseHttpDate('Nov 25 2026 10:15:08 GMT'), T);
    assert.equal(parseHttpDate('25 Nov 2026 10.15.08 GMT'), T);
  });

  it('reads a date form-encoded in a query string once decoded', () => {
    const query = new URLSearchParams('last_modified=Tue%2C+14+Nov+2023+22%3A13%3A20+-0000').get(
      'last_modified',
    );
    assert.equal(parseHttpDate(query!), 1_700_000_000);
  });

  it('reads dates before the epoch as negative versions', () => {
    assert.equal(parseHttpDate('Thu, 01 Jan 1970 00:00:00 GMT'), 0);
    assert.equal(parseHttpDate('Wed, 31 Dec 1969 23:59:59 GMT'), -1);
    assert.equal(parseHttpDate('Thu, 01 Jan 1970 00:59:59 +0100'), -1);
    assert.equal(parseHttpDate('Mon, 01 Jan 1900 00:00:00 GMT'), -2_208_988_800);
  });

  it('rejects garbage with BAD_DATE, status 400', () => {
    for (const value of [
      '',
      '   ',
      'yesterday',
      '1700000000',
      'Wed, 25 Foo 2026 10:15:08 GMT',
      'Wed, 25 Nov 2026',
      'Wed, 25 Nov 2026 10-15-08 GMT',
      'Wed, xx Nov 2026 10:15:08 GMT',
      'Wed, 25 Nov 20x6 10:15:08 GMT',
      'Wed, 25 Nov 2026 10:15:08:01 GMT',
      'Wed, 32 Nov 2026 10:15:08 GMT',
      'Wed, 25 Nov 2026 25:00:00 GMT',
      'Wed, 25 Nov 2026 10:60:00 GMT',
      '2026-11-25T10:15:08Z',
    ]) {
      assert.throws(
        () => parseHttpDate(value),
        (err: unknown) =>
          err instanceof FiletrackerError && err.code === 'BAD_DATE' && err.status === 400,
        JSON.stringify(value),
      );
    }
  });
});

describe('formatHttpDate', () => {
  it('emits IMF-fixdate', () => {
    assert.equal(formatHttpDate(T), 'Wed, 25 Nov 2026 10:15:08 GMT');
    assert.equal(formatHttpDate(1_700_000_000), 'Tue, 14 Nov 2023 22:13:20 GMT');
    assert.equal(formatHttpDate(0), 'Thu, 01 Jan 1970 00:00:00 GMT');
    assert.equal(formatHttpDate(-1), 'Wed, 31 Dec 1969 23:59:59 GMT');
  });

  it('round-trips through parseHttpDate, negative versions included', () => {
    const versions = [
      -2_208_988_800,
      -86_400,
      -1,
      0,
      1,
      951_782_400, // 29 Feb 2000
      1_500_000_000,
      2 ** 31,
      utc(9999, 12, 31, 23, 59, 59),
    ];
    // A deterministic spread over years 1906..9000.
    let x = 12345;
    for (let i = 0; i < 500; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      versions.push(-2e9 + Math.floor((x / 2 ** 31) * 2.5e11));
    }
    for (const v of versions) assert.equal(parseHttpDate(formatHttpDate(v)), v, String(v));
  });
});

describe('parseHttpDate: the common forms read as the general parser reads them', () => {
  it('IMF-fixdate and numeric zones, in range and rolled over, equal their spelling that only the general parser reads', () => {
    const rand = prng(19);
    const days = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
    const months = [
      'Jan',
      'Feb',
      'Mar',
      'Apr',
      'May',
      'Jun',
      'Jul',
      'Aug',
      'Sep',
      'Oct',
      'Nov',
      'Dec',
    ];
    const two = (n: number): string => String(n).padStart(2, '0');
    let read = 0;
    for (let i = 0; i < 5000; i++) {
      // Edges often: the first and last days, 24:00, leap seconds, years near 100, and
      // fields out of range (day 0 or 32, hour 25, minute 60, second 62), which both refuse.
      const day =
        between(rand, 0, 4) === 0 ? pick(rand, [0, 1, 29, 30, 31, 32]) : between(rand, 1, 28);
      const hh = between(rand, 0, 4) === 0 ? pick(rand, [0, 23, 24, 25]) : between(rand, 0, 23);
      const mi = between(rand, 0, 9) === 0 ? 60 : between(rand, 0, 59);
      const ss = between(rand, 0, 4) === 0 ? pick(rand, [0, 59, 60, 61, 62]) : between(rand, 0, 59);
      const year =
        between(rand, 0, 9) === 0
          ? pick(rand, [99, 100, 101, 1900, 9999])
          : between(rand, 1000, 2500);
      const zone =
        between(rand, 0, 2) === 0
          ? 'GMT'
          : pick(rand, ['+', '-']) + String(between(rand, 0, 9999)).padStart(4, '0');
      const month = pick(rand, months);
      const date = `${two(day)} ${month} ${String(year).padStart(4, '0')} ${two(hh)}:${two(mi)}:${two(ss)} ${zone}`;
      const common = `${pick(rand, days)}, ${date}`;
      // Two spaces and a month in lower case: not the common form, the same date.
      const general = `${pick(rand, days)},  ${date.replace(month, month.toLowerCase())}`;
      const outcome = (v: string): number | string => {
        try {
          return parseHttpDate(v);
        } catch (err) {
          return (err as FiletrackerError).code;
        }
      };
      const expected = outcome(general);
      assert.equal(outcome(common), expected, common);
      if (typeof expected === 'number') read++;
    }
    // Most of them are dates, and some are refused.
    assert.ok(read > 3500 && read < 5000, `${read} of 5000 read`);
  });
});

describe('nowVersion', () => {
  it('is the current time in whole seconds', () => {
    const before = Math.floor(Date.now() / 1000);
    const now = nowVersion();
    const after = Math.floor(Date.now() / 1000);
    assert.ok(Number.isInteger(now));
    assert.ok(before <= now && now <= after);
  });
});

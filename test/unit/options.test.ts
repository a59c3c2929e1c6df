import { isNetvolError } from '../../src/errors';
import { ACCEPTED_OPTIONS, FS_MIN_SIZE, formatSize, parseSize, parseVolumeOptions, refuseBelowMinimum, specDifferences } from '../../src/driver/options';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** The options checked as a Create of a new volume checks them: parsed, then held to the filesystem's minimum. */
function refusal(opts: unknown): string {
  try {
    refuseBelowMinimum('vol1', parseVolumeOptions('vol1', opts, 'local'), opts);
  } catch (err) {
    if (isNetvolError(err, 'INVALID_OPTION')) return err.message;
    throw err;
  }
  throw new Error(`options ${JSON.stringify(opts)} were accepted`);
}

describe('parseSize()', () => {
  it.each([
    ['512M', 512 * MiB],
    ['10G', 10 * GiB],
    ['1.5T', 1.5 * TiB],
    ['100MiB', 100 * MiB],
    ['2gb', 2 * GiB],
    ['64k', 64 * KiB],
    [' 1G ', GiB],
    ['1048576', 1048576],
  ])('parses %j with binary units as %d bytes', (text, expected) => {
    expect(parseSize(text)).toBe(expected);
  });

  it.each(['garbage', '', '10X', '-1G', '1.5', 'G', '10 G B', '1e9'])('returns undefined for %j', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });

  it('formatSize() writes binary units with one decimal', () => {
    expect(formatSize(64 * MiB)).toBe('64.0 MiB');
    expect(formatSize(12.5 * MiB)).toBe('12.5 MiB');
    expect(formatSize(3 * GiB)).toBe('3.0 GiB');
  });
});

describe('parseVolumeOptions()', () => {
  it('gives defaults for null Opts (a volume a container creates implicitly)', () => {
    expect(parseVolumeOptions('vol1', null, 'local')).toEqual({
      backend: 'local', layout: 'directory', sizeBytes: undefined, fs: undefined, uid: undefined, gid: undefined, mode: undefined, onRemove: 'delete',
    });
  });

  it('gives the same defaults for {} and for missing Opts', () => {
    expect(parseVolumeOptions('vol1', {}, 'local')).toEqual(parseVolumeOptions('vol1', null, 'local'));
    expect(parseVolumeOptions('vol1', undefined, 'local')).toEqual(parseVolumeOptions('vol1', null, 'local'));
  });

  it('uses the configured default backend unless backend is given', () => {
    expect(parseVolumeOptions('vol1', {}, 'nas').backend).toBe('nas');
    expect(parseVolumeOptions('vol1', { backend: 'other' }, 'nas').backend).toBe('other');
  });

  it('turns size into an ext4 image layout, rounded down to 4 KiB', () => {
    const spec = parseVolumeOptions('vol1', { size: '512M' }, 'local');
    expect(spec).toMatchObject({ layout: 'image', sizeBytes: 512 * MiB, fs: 'ext4' });
    expect(parseVolumeOptions('vol1', { size: String(16 * MiB + 100) }, 'local').sizeBytes).toBe(16 * MiB);
  });

  it('accepts fs=xfs with a size', () => {
    expect(parseVolumeOptions('vol1', { size: '1G', fs: 'xfs' }, 'local')).toMatchObject({ layout: 'image', fs: 'xfs' });
  });

  it('refuses a garbage size, naming the option and giving examples', () => {
    const message = refusal({ size: 'huge' });
    expect(message).toContain('volume vol1');
    expect(message).toContain('invalid value "huge" for option "size"');
    expect(message).toContain('512M, 10G or 1.5T');
  });

  it('refuses a size under 16M, naming the volume, the filesystem, the minimum and what to do', () => {
    expect(refusal({ size: '1M' })).toBe('volume vol1: size=1M is below the 16M minimum of an ext4 image; use size=16M or more');
  });

  it('holds each filesystem to the minimum its mkfs accepts: ext4 16M, xfs 300M (mkfs.xfs refuses less)', () => {
    expect(FS_MIN_SIZE).toEqual({ ext4: 16 * MiB, xfs: 300 * MiB });
    expect(parseVolumeOptions('vol1', { size: '300M', fs: 'xfs' }, 'local')).toMatchObject({ sizeBytes: 300 * MiB, fs: 'xfs' });
    expect(parseVolumeOptions('vol1', { size: '16M', fs: 'ext4' }, 'local')).toMatchObject({ sizeBytes: 16 * MiB, fs: 'ext4' });
    for (const opts of [{ size: '300M', fs: 'xfs' }, { size: '16M', fs: 'ext4' }, { size: '16M' }]) {
      expect(() => refuseBelowMinimum('vol1', parseVolumeOptions('vol1', opts, 'local'), opts)).not.toThrow();
    }
  });

  it('parses a size under the minimum: only a new volume is held to it (an older xfsprogs made smaller xfs images)', () => {
    expect(parseVolumeOptions('vol1', { size: '64M', fs: 'xfs' }, 'local')).toMatchObject({ sizeBytes: 64 * MiB, fs: 'xfs' });
  });

  it('refuses fs=xfs under 300M at Create, naming the volume, the minimum and the ways out', () => {
    expect(refusal({ size: '64M', fs: 'xfs' })).toBe(
      'volume vol1: size=64M is below the 300M minimum of an xfs image (mkfs.xfs makes none smaller); use size=300M or more, or fs=ext4 (minimum 16M)',
    );
    expect(refusal({ size: String(300 * MiB - 4096), fs: 'xfs' })).toContain('below the 300M minimum of an xfs image');
  });

  it('refuses an unknown option, naming it and listing every accepted option', () => {
    const message = refusal({ colour: 'blue' });
    expect(message).toContain('invalid option "colour"');
    for (const option of ACCEPTED_OPTIONS) expect(message).toContain(option);
    expect(ACCEPTED_OPTIONS).toEqual(['backend', 'size', 'fs', 'uid', 'gid', 'mode', 'onRemove', 'from']);
  });

  it.each(['password', 'sshPassword', 'secret', 'apiToken', 'privateKey', 'credentials'])(
    'refuses the secret-like option %s and points to the daemon config, without echoing its value',
    (key) => {
      const message = refusal({ [key]: 'hunter2' });
      expect(message).toContain(`option "${key}" is refused`);
      expect(message).toContain('netvol daemon config');
      expect(message).not.toContain('hunter2');
    },
  );

  it('refuses fs without size, saying fs needs size', () => {
    expect(refusal({ fs: 'ext4' })).toContain('option "fs" needs "size"');
  });

  it('refuses an unknown fs, listing the accepted ones once, in our words', () => {
    expect(refusal({ size: '1G', fs: 'btrfs' })).toBe('volume vol1: invalid value "btrfs" for option "fs": must be one of ext4, xfs');
  });

  it.each([
    ['0755', 0o755],
    ['755', 0o755],
    ['0700', 0o700],
    ['1777', 0o1777],
  ])('reads mode %s as octal', (text, mode) => {
    expect(parseVolumeOptions('vol1', { mode: text }, 'local').mode).toBe(mode);
  });

  it.each(['0999', 'rwxr-xr-x', '7', '', '0o755'])('refuses mode %j, asking for octal', (text) => {
    expect(refusal({ mode: text })).toContain('must be octal such as 0755');
  });

  it('reads uid and gid as numbers and refuses non-numbers', () => {
    expect(parseVolumeOptions('vol1', { uid: '1000', gid: '50' }, 'local')).toMatchObject({ uid: 1000, gid: 50 });
    expect(refusal({ uid: 'root' })).toContain('invalid value "root" for option "uid": must be a number');
  });

  it('refuses a uid or gid beyond the kernel\'s range when parsing, not later at chown', () => {
    expect(parseVolumeOptions('vol1', { uid: '4294967294' }, 'local').uid).toBe(4294967294);
    expect(refusal({ uid: '9999999999' })).toContain('invalid value "9999999999" for option "uid": must be at most 4294967294');
    expect(refusal({ gid: '4294967295' })).toContain('option "gid": must be at most 4294967294');
  });

  it('refuses an unknown onRemove, listing delete, retain and archive', () => {
    expect(refusal({ onRemove: 'shred' })).toBe('volume vol1: invalid value "shred" for option "onRemove": must be one of delete, retain, archive');
    expect(parseVolumeOptions('vol1', { onRemove: 'archive' }, 'local').onRemove).toBe('archive');
  });

  it('refuses Opts that are not a map', () => {
    expect(refusal(['size=1G'])).toContain('options must be a map of strings');
    expect(refusal('size=1G')).toContain('options must be a map of strings');
  });

  it('refuses a non-string option value, saying values are text', () => {
    expect(refusal({ size: 1024 })).toBe('volume vol1: invalid value (a number) for option "size": must be text, not a number');
    expect(refusal({ backend: { a: 1 } })).toBe('volume vol1: invalid value (an object) for option "backend": must be text, not an object');
  });

  it('refuses an empty backend name in our words', () => {
    expect(refusal({ backend: '' })).toBe('volume vol1: invalid value "" for option "backend": must not be empty');
  });

  it('shortens a long bad value instead of echoing all of it', () => {
    const message = refusal({ fs: 'x'.repeat(5000) });
    expect(message.length).toBeLessThan(200);
    expect(message).toContain('for option "fs": must be one of ext4, xfs');
  });

  it.each<[string, unknown]>([
    ['enum', { size: '1G', fs: 'zfs' }],
    ['enum', { onRemove: 'burn' }],
    ['number', { uid: 'root' }],
    ['number', { gid: '99999999999' }],
    ['string', { size: 12 }],
    ['string', { backend: '' }],
    ['unknown key', { colour: 'blue' }],
    ['bad size', { size: 'huge' }],
    ['bad size', { size: '1M' }],
    ['bad size', { size: '100M', fs: 'xfs' }],
    ['octal', { mode: 'rwx' }],
    ['not a map', ['size=1G']],
  ])('a bad %s option reads as our sentence, with none of the validation library\'s wording (%j)', (_kind, opts) => {
    const message = refusal(opts);
    expect(message).toMatch(/^volume vol1: /);
    expect(message).not.toMatch(/Invalid (input|option|string)|expected |received |Too (big|small)|Unrecognized|\|"|"\|/);
  });

  it('trims whitespace around values', () => {
    expect(parseVolumeOptions('vol1', { size: ' 1G ', onRemove: ' retain ' }, 'local')).toMatchObject({ sizeBytes: GiB, onRemove: 'retain' });
  });

  it('specDifferences() names the differing options by their -o names', () => {
    const a = parseVolumeOptions('v', { size: '1G', mode: '0700' }, 'local');
    const b = parseVolumeOptions('v', { size: '2G', mode: '0700', onRemove: 'retain' }, 'local');
    expect(specDifferences(a, b)).toEqual(['size', 'onRemove']);
    expect(specDifferences(a, parseVolumeOptions('v', { mode: '700', size: '1024M' }, 'local'))).toEqual([]);
  });
});

describe('what an option error quotes of the value the user wrote', () => {
  const refused = (opts: unknown): string => {
    try {
      parseVolumeOptions('vol1', opts, 'local');
    } catch (err) {
      if (isNetvolError(err, 'INVALID_OPTION')) return err.message;
      throw err;
    }
    throw new Error('not refused');
  };

  it('cuts a long value or key after 60 characters and gives its length', () => {
    const big = 'x'.repeat(200_000);
    for (const opts of [{ size: big }, { [big]: '1' }, { [`${big}password`]: '1' }]) {
      const msg = refused(opts);
      expect(msg).toMatch(/^volume vol1: /);
      expect(msg).toContain(`"${'x'.repeat(60)}…" (${opts.size ? 200_000 : Object.keys(opts)[0].length} characters)`);
      expect(msg.length).toBeLessThan(300);
    }
  });

  it('describes a value that is not text in words, never as "[object Object]" or the library\'s wording', () => {
    expect(refused({ backend: { a: 'b' } })).toBe('volume vol1: invalid value (an object) for option "backend": must be text, not an object');
    expect(refused({ fs: ['xfs'] })).not.toMatch(/\[object|Invalid input|expected/);
  });
});


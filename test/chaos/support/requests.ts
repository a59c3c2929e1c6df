/**
 * fast-check arbitraries for what reaches the plugin socket: well-formed requests on a small set
 * of names (so that workers race on the same volumes), and hostile ones — bodies that are not
 * JSON, values of the wrong type, huge and unicode strings, path traversal in names, random
 * options and mount IDs — on every route dockerd calls and on some it never does.
 */
import fc from 'fast-check';

export const ROUTES = [
  'Plugin.Activate',
  'VolumeDriver.Create',
  'VolumeDriver.Remove',
  'VolumeDriver.Mount',
  'VolumeDriver.Unmount',
  'VolumeDriver.Path',
  'VolumeDriver.Get',
  'VolumeDriver.List',
  'VolumeDriver.Capabilities',
] as const;

/** Names the well-formed requests race on; `fz-img` is the one image volume. */
export const RACE_NAMES = ['fz-a', 'fz-b', 'fz-c', 'fz-img'] as const;
/** Mount IDs a worker uses (each worker prefixes them with its own mark, as containers have their own). */
export const RACE_IDS = ['m0', 'm1', 'm2'] as const;

/** A body sent as is (not JSON-encoded by the sender). */
export interface RawBody {
  raw: string;
}

export interface FuzzRequest {
  route: string;
  /** undefined: no body at all (what dockerd sends to Plugin.Activate). */
  body: unknown;
  headers?: Record<string, string>;
}

export const isRaw = (b: unknown): b is RawBody => typeof b === 'object' && b !== null && typeof (b as RawBody).raw === 'string' && Object.keys(b).length === 1;

const HUGE = 'x'.repeat(200_000);

const traversal = fc.constantFrom(
  '..', '.', '/', '../../etc/passwd', '../fz-a', 'fz-a/../fz-b', 'fz-a/data', '/etc', 'fz-a\u0000x', 'fz-a\n', ' fz-a', 'fz-a ',
  'FZ-A', 'fz-a.archive-20260101', '.netvol-hosts', '.netvol-trash-fz-a', '%2e%2e%2f', '\u202efz-a', 'fz-ä', 'ｆｚ-a', 'con', '-rf',
  'a'.repeat(255), 'b'.repeat(256), 'fz-a'.repeat(70),
);

/** Strings meant to break something: random, unicode graphemes, control bytes, traversal, very long. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 4, arbitrary: traversal },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,20}$/) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((n) => 'y'.repeat(n)) },
);

/** Any JSON value or one of the wrong types dockerd never sends. */
export const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
  fc.jsonValue({ maxDepth: 3 }),
);

const OPTION_KEYS = ['size', 'fs', 'uid', 'gid', 'mode', 'onRemove', 'backend', 'password', 'sshKey', 'o', 'type', 'device', '__proto__', 'constructor'];
const OPTION_VALUES = ['16M', '17M', '1G', '10P', '0', '-1', '15M', 'ext4', 'xfs', 'btrfs', '1000', '4294967295', '0755', '9999', 'delete', 'retain', 'archive', 'local', 'nope', ''];

/** Random `Opts`: well-formed ones that are accepted, and every kind of wrong. */
export const options: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.constantFrom<Record<string, string>>({}, { onRemove: 'delete' }, { mode: '0750' }, { uid: '1000', gid: '1000' }) },
  { weight: 4, arbitrary: fc.dictionary(fc.constantFrom(...OPTION_KEYS), fc.oneof(fc.constantFrom(...OPTION_VALUES), anyValue), { maxKeys: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(hostileString, anyValue, { maxKeys: 3 }) },
  { weight: 1, arbitrary: anyValue },
);

const raceName = fc.constantFrom(...RACE_NAMES);
const raceId = fc.constantFrom(...RACE_IDS);
/** Options the race names are created with: the image volume always 16M ext4, the folders plain. */
const raceOpts = (name: string): Record<string, string> | null => (name === 'fz-img' ? { size: '16M' } : null);

/** A request dockerd could send: the races on the same few names. */
export const raceRequest: fc.Arbitrary<FuzzRequest> = fc.oneof(
  { weight: 3, arbitrary: raceName.map((n) => ({ route: 'VolumeDriver.Create', body: { Name: n, Opts: raceOpts(n) } })) },
  { weight: 2, arbitrary: raceName.map((n) => ({ route: 'VolumeDriver.Remove', body: { Name: n } })) },
  { weight: 4, arbitrary: fc.tuple(raceName, raceId).map(([n, id]) => ({ route: 'VolumeDriver.Mount', body: { Name: n, ID: id } })) },
  { weight: 4, arbitrary: fc.tuple(raceName, raceId).map(([n, id]) => ({ route: 'VolumeDriver.Unmount', body: { Name: n, ID: id } })) },
  { weight: 2, arbitrary: raceName.map((n) => ({ route: 'VolumeDriver.Get', body: { Name: n } })) },
  { weight: 1, arbitrary: raceName.map((n) => ({ route: 'VolumeDriver.Path', body: { Name: n } })) },
  { weight: 1, arbitrary: fc.constant({ route: 'VolumeDriver.List', body: {} }) },
);

const hostileName = fc.oneof({ weight: 3, arbitrary: raceName }, { weight: 4, arbitrary: hostileString }, { weight: 1, arbitrary: anyValue });
const hostileId = fc.oneof({ weight: 3, arbitrary: raceId }, { weight: 3, arbitrary: hostileString }, { weight: 1, arbitrary: anyValue });

const hostileBody: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ Name: hostileName, ID: hostileId, Opts: options }, { requiredKeys: [] }) },
  { weight: 2, arbitrary: fc.record({ Name: hostileName, ID: hostileId, Opts: options, Extra: anyValue, Err: anyValue }, { requiredKeys: [] }) },
  { weight: 2, arbitrary: fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('{', '{"Name":', '{"Name":"fz-a"', 'null', '[]', '42', '"fz-a"', 'true', '{"Name":"fz-a",}', '\u0000', '{}{}')).map((raw) => ({ raw })) },
  { weight: 2, arbitrary: anyValue },
  { weight: 1, arbitrary: fc.constant(undefined) },
  // Over the daemon's body limit, and just under it.
  { weight: 1, arbitrary: fc.constantFrom({ raw: `{"Name":"${HUGE.repeat(6)}"}` }, { raw: `{"Name":"fz-a","Opts":{"size":"${HUGE}"}}` }, { Name: 'fz-a', ID: HUGE }) },
);

const anyRoute = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...ROUTES) },
  { weight: 1, arbitrary: fc.constantFrom('VolumeDriver.Nope', 'volumedriver.create', 'VolumeDriver.Create/../VolumeDriver.Remove', '', 'VolumeDriver.', 'Plugin.Activate?x=1') },
);

const headers = fc.oneof(
  { weight: 8, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom<Record<string, string>>({ 'Content-Type': 'text/plain' }, { 'Content-Type': 'application/x-www-form-urlencoded' }, { 'Content-Type': 'application/json; charset=latin1' }, { 'Content-Encoding': 'gzip' }) },
);

/** A request nobody well-behaved sends, on any route. */
export const hostileRequest: fc.Arbitrary<FuzzRequest> = fc.record({ route: anyRoute, body: hostileBody, headers }, { requiredKeys: ['route', 'body'] });

/** The mix the fuzz run sends: mostly races on the same names, a third hostile. */
export const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc.oneof({ weight: 2, arbitrary: raceRequest }, { weight: 1, arbitrary: hostileRequest });

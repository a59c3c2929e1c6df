import { ARCHIVE_MARK } from '../backends';
import { NetvolError, QUOTE_LIMIT, quoteUserValue } from '../errors';

/** Docker's rule for volume names (moby volume/local: [a-zA-Z0-9][a-zA-Z0-9_.-]+), capped at 255. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/**
 * Refuses a name before any storage is touched. The rule also keeps names safe as path elements:
 * no slash, and "." / ".." cannot match (the first character is alphanumeric). Names containing
 * ".archive-" are reserved for archived volumes.
 */
export function validateVolumeName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new NetvolError('INVALID_NAME', 'volume name is empty: give a name of 2 to 255 characters from [a-zA-Z0-9_.-]');
  }
  const shown = name.length > QUOTE_LIMIT ? `${name.slice(0, QUOTE_LIMIT)}…` : name;
  if (name.length > 255) {
    throw new NetvolError('INVALID_NAME', `volume name ${quoteUserValue(name)} is ${name.length} characters long: the limit is 255`, { volume: shown });
  }
  if (!VOLUME_NAME.test(name)) {
    throw new NetvolError(
      'INVALID_NAME',
      `volume name ${quoteUserValue(name)} is not allowed: use at least 2 characters from [a-zA-Z0-9_.-], starting with a letter or digit`,
      { volume: shown },
    );
  }
  if (name.includes(ARCHIVE_MARK)) {
    throw new NetvolError('INVALID_NAME', `volume name "${name}" is reserved: names containing "${ARCHIVE_MARK}" are archives`, { volume: name });
  }
  return name;
}

export { ARCHIVE_MARK, archiveName } from '../backends';

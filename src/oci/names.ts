// The distribution-spec grammar for repository names and tags.
import { RegistryError } from './errors.js';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

/** Throws NAME_INVALID unless `name` is a valid repository name. */
export function checkName(name: string): string {
  if (!isValidName(name)) {
    const reason =
      name.length > MAX_NAME_LENGTH
        ? `longer than ${MAX_NAME_LENGTH} characters`
        : 'does not match the repository name grammar';
    throw new RegistryError('NAME_INVALID', {
      message: `invalid repository name: ${reason}`,
      detail: { name: name.slice(0, 300) },
    });
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/** Throws TAG_INVALID unless `tag` is a valid tag. */
export function checkTag(tag: string): string {
  if (!isValidTag(tag)) throw new RegistryError('TAG_INVALID', { detail: { tag: tag.slice(0, 300) } });
  return tag;
}

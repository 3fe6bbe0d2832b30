/**
 * Names shared by the organization hub (`-c organizationId=o-...`) and the member template
 * (`SyncRoutesMember`, deployed by StackSets). They are an interface: member stacks already
 * deployed in many accounts refer to them by name, so changing one breaks every member.
 */

/** The hub's event bus, which admits the organization's accounts. */
export const HUB_BUS_NAME = 'sync-routes';

/** The role the hub function assumes in each member account (`SYNC_MEMBER_ROLE_NAME`). */
export const DEFAULT_MEMBER_ROLE_NAME = 'sync-routes-member';

/**
 * Name of the hub function's role. Fixed in a hub, so that a member role can trust exactly it
 * without the hub's stack outputs: one hub per region, IAM names are global to the account.
 */
export function hubRoleName(region: string): string {
  return `sync-routes-hub-${region}`;
}

/** An AWS Organizations ID, as `aws organizations describe-organization` prints it. */
export const ORGANIZATION_ID_PATTERN = /^o-[a-z0-9]{10,32}$/;

/** An IAM role name (`memberRoleName`, the member template's `MemberRoleName`). */
export const IAM_ROLE_NAME_PATTERN = /^[\w+=,.@-]{1,64}$/;

/**
 * Shortest external id the hub and the member template accept (`memberExternalId`, the
 * member template's `ExternalId`). STS takes 2 characters; an external id is not a secret,
 * but a short one is easy to reuse by accident across tenants of a hub.
 */
export const MEMBER_EXTERNAL_ID_MIN_LENGTH = 8;

/** Longest external id STS accepts. */
export const MEMBER_EXTERNAL_ID_MAX_LENGTH = 1224;

/** The characters STS accepts in an external id (a regular expression's character class). */
export const EXTERNAL_ID_CHARACTERS = '[\\w+=,.@:/-]';

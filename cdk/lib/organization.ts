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

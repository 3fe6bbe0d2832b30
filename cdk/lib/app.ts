import { App } from 'aws-cdk-lib';
import { MEMBER_STACK_NAME, SyncRoutesMemberStack } from './member-stack';
import { ORGANIZATION_ID_PATTERN } from './organization';
import { REGION_PATTERN } from './sync-routes';
import { SyncRoutesStack } from './sync-routes-stack';

/**
 * The app's stacks. EventBridge rules are regional: `-c regions=us-east-1,eu-west-1` deploys
 * one stack per region (`SyncRoutes-us-east-1`, ...). A multi-region trail covers every
 * region, so with `-c createTrail=true` only the first region's stack creates it.
 * Without `regions`, one stack named `SyncRoutes` (template `cdk.out/SyncRoutes.template.json`),
 * environment-agnostic: synth needs no credentials and `cdk deploy` targets the account and
 * region of the current AWS profile.
 *
 * With `-c organizationId=o-...` the app also holds the member template `SyncRoutesMember`
 * (`cdk.out/SyncRoutesMember.template.json`), which a StackSet deploys into the organization's
 * accounts; it is never deployed with the hub, so `cdk deploy` then needs the hub's stack
 * name. Returns the hub stacks; the member stack is `app.node.tryFindChild(MEMBER_STACK_NAME)`.
 */
export function addStacks(app: App): SyncRoutesStack[] {
  const hubs = addHubStacks(app);
  const organizationId = app.node.tryGetContext('organizationId');
  if (organizationId !== undefined && organizationId !== '') {
    if (!ORGANIZATION_ID_PATTERN.test(String(organizationId))) {
      throw new Error(`organizationId: '${organizationId}' is not an AWS Organizations ID (o-exampleorg1)`);
    }
    new SyncRoutesMemberStack(app, MEMBER_STACK_NAME, { stackName: MEMBER_STACK_NAME });
  }
  return hubs;
}

function addHubStacks(app: App): SyncRoutesStack[] {
  const regions = String(app.node.tryGetContext('regions') ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  if (regions.length === 0) {
    return [new SyncRoutesStack(app, 'SyncRoutes', { stackName: 'SyncRoutes' })];
  }
  return regions.map((region, i) => {
    if (!REGION_PATTERN.test(region)) {
      throw new Error(`regions: '${region}' is not an AWS region name (us-east-1)`);
    }
    const name = `SyncRoutes-${region}`;
    return new SyncRoutesStack(app, name, {
      stackName: name,
      env: { region, account: process.env.CDK_DEFAULT_ACCOUNT },
      trailInThisRegion: i === 0,
    });
  });
}

import { App } from 'aws-cdk-lib';
import { SyncRoutesStack } from './sync-routes-stack';

/**
 * The app's stacks. EventBridge rules are regional: `-c regions=us-east-1,eu-west-1` deploys
 * one stack per region (`SyncRoutes-us-east-1`, ...). A multi-region trail covers every
 * region, so with `-c createTrail=true` only the first region's stack creates it.
 * Without `regions`, one stack named `SyncRoutes` (template `cdk.out/SyncRoutes.template.json`),
 * environment-agnostic: synth needs no credentials and `cdk deploy` targets the account and
 * region of the current AWS profile.
 */
export function addStacks(app: App): SyncRoutesStack[] {
  const regions = String(app.node.tryGetContext('regions') ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  if (regions.length === 0) {
    return [new SyncRoutesStack(app, 'SyncRoutes', { stackName: 'SyncRoutes' })];
  }
  return regions.map((region, i) => {
    if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) {
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

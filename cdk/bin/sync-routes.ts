#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { addStacks } from '../lib/app';

const app = new App();
// One stack, or one per region with -c regions=...; with -c organizationId=... also the
// member template SyncRoutesMember, for a StackSet.
addStacks(app);
// cdk-nag's AwsSolutions pack, on every stack; any unacknowledged finding stops synth and deploy.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

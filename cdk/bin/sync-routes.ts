#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { SyncRoutesStack } from '../lib/sync-routes-stack';

const app = new App();
// Pinned name: the template is always cdk.out/SyncRoutes.template.json. No `env`: the stack
// is environment-agnostic (Aws.ACCOUNT_ID / Aws.REGION tokens), so synth needs no credentials
// and `cdk deploy` targets the account and region of the current AWS profile.
new SyncRoutesStack(app, 'SyncRoutes', { stackName: 'SyncRoutes' });
// cdk-nag's AwsSolutions pack; any unacknowledged finding stops synth and deploy.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

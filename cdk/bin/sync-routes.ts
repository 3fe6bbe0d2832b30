#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { addStacks } from '../lib/app';

const app = new App();
addStacks(app); // one stack, or one per region with -c regions=...
// cdk-nag's AwsSolutions pack; any unacknowledged finding stops synth and deploy.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { SyncRoutesStack } from '../lib/sync-routes-stack';

// The tests never build Rust: the function code is this directory with a dummy bootstrap.
export const PLACEHOLDER_ASSET = path.join(__dirname, 'fixtures', 'lambda-placeholder');

// The same feature flags as `cdk synth` (cdk.json), so tests see the deployed template.
const CDK_JSON_CONTEXT: Record<string, unknown> = require('../cdk.json').context;

/** A fresh app with the cdk.json context, the placeholder code and the given context values. */
export function newApp(context: Record<string, unknown> = {}): App {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'sync-routes-cdk-'));
  return new App({ context: { ...CDK_JSON_CONTEXT, lambdaAsset: PLACEHOLDER_ASSET, ...context }, outdir });
}

/** The stack as `bin/sync-routes.ts` builds it. */
export function synthStack(context: Record<string, unknown> = {}): { stack: SyncRoutesStack; template: Template } {
  const app = newApp(context);
  const stack = new SyncRoutesStack(app, 'SyncRoutes', { stackName: 'SyncRoutes' });
  return { stack, template: Template.fromStack(stack) };
}

/**
 * Synthesizes with cdk-nag's AwsSolutions pack, as bin/sync-routes.ts does. CDK throws
 * "Validation failed" on any unacknowledged finding and writes validation-report.json;
 * returns that error (or '') and the plugin reports of the file.
 */
export function nagCheck(app: App): { error: string; pluginReports: unknown[] } {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  let error = '';
  try {
    app.synth();
  } catch (e) {
    error = String(e);
  }
  const report = path.join(app.outdir, 'validation-report.json');
  const pluginReports = fs.existsSync(report) ? JSON.parse(fs.readFileSync(report, 'utf8')).pluginReports : [];
  return { error, pluginReports };
}

/** Every IAM policy statement in a template: identity policies, role inline policies and resource policies. */
export function allPolicyStatements(template: Template): Array<{ resource: string; statement: Record<string, any> }> {
  const found: Array<{ resource: string; statement: Record<string, any> }> = [];
  const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, any> }>;
  for (const [id, resource] of Object.entries(resources)) {
    const props = resource.Properties ?? {};
    const documents = [
      props.PolicyDocument, // AWS::IAM::Policy, SNS/SQS/S3 resource policies
      props.KeyPolicy, // AWS::KMS::Key
      props.AssumeRolePolicyDocument, // AWS::IAM::Role
      ...((props.Policies as Array<{ PolicyDocument: unknown }> | undefined) ?? []).map((p) => p.PolicyDocument),
    ].filter(Boolean) as Array<{ Statement: Array<Record<string, any>> }>;
    for (const document of documents) {
      for (const statement of document.Statement) {
        found.push({ resource: `${id} (${resource.Type})`, statement });
      }
    }
  }
  return found;
}

/** The environment variables of the template's one Lambda function. */
export function functionEnvironment(template: Template): Record<string, unknown> {
  const functions = Object.values(template.findResources('AWS::Lambda::Function'));
  expect(functions).toHaveLength(1);
  return functions[0].Properties.Environment.Variables;
}

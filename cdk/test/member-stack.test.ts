import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { addStacks } from '../lib/app';
import { MEMBER_STACK_NAME, SyncRoutesMemberStack } from '../lib/member-stack';
import { allPolicyStatements, nagCheck, newApp } from './helpers';

const ORG = { organizationId: 'o-exampleorg1', memberExternalId: 'example-external-id' };
// Logical IDs are stable (they derive from construct paths), so tests may name them.
const MEMBER_ROLE = 'MemberRoleD41984AC';
const FORWARDING_ROLE = 'ForwardingRole7C571F0A';
const FORWARDING_RULE = 'ForwardingRule6039FF0D';
const DLQ = 'ForwardingDeadLetterQueue2184568B';

/** `arn:${Partition}:<rest...>` as CDK renders a template string of tokens. */
const join = (...parts: unknown[]) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ...parts]] });
const HUB_BUS_ARN = join(':events:', { Ref: 'HubRegion' }, ':', { Ref: 'HubAccountId' }, ':event-bus/sync-routes');

/** The app as bin/sync-routes.ts builds it, with an organization. */
function synthOrganization(context: Record<string, unknown> = {}): { app: App; hub: Template; member: Template; memberStack: SyncRoutesMemberStack } {
  const app = newApp({ ...ORG, ...context });
  const [hubStack] = addStacks(app);
  const memberStack = app.node.findChild(MEMBER_STACK_NAME) as SyncRoutesMemberStack;
  return { app, hub: Template.fromStack(hubStack), member: Template.fromStack(memberStack), memberStack };
}

/** The EC2 actions a template's Allow statements grant, sorted, each once. */
function ec2Actions(template: Template): string[] {
  const actions = allPolicyStatements(template)
    .filter(({ statement }) => statement.Effect === 'Allow')
    .flatMap(({ statement }) => [statement.Action].flat() as string[])
    .filter((action) => action.startsWith('ec2:'));
  return [...new Set(actions)].sort();
}

describe('the member stack in the app', () => {
  test('absent without organizationId: one stack, so `cdk deploy` needs no stack name', () => {
    const app = newApp();
    addStacks(app);
    expect(app.node.children.filter(Stack.isStack).map((s) => s.stackName)).toEqual(['SyncRoutes']);
    const empty = newApp({ organizationId: '' });
    addStacks(empty);
    expect(empty.node.children.filter(Stack.isStack).map((s) => s.stackName)).toEqual(['SyncRoutes']);
  });

  test('with organizationId: the hub and SyncRoutesMember; a bad organization ID is refused', () => {
    const app = newApp(ORG);
    expect(addStacks(app).map((s) => s.stackName)).toEqual(['SyncRoutes']);
    expect(app.node.children.filter(Stack.isStack).map((s) => s.stackName)).toEqual(['SyncRoutes', 'SyncRoutesMember']);
    expect(() => addStacks(newApp({ organizationId: 'exampleorg1' }))).toThrow(/organizationId: 'exampleorg1' is not an AWS Organizations ID/);
  });
});

describe('member template', () => {
  const { app, member } = synthOrganization();
  const json = member.toJSON();

  test('flat, asset-free, bootstrap-free and environment-agnostic, for a StackSet', () => {
    const artifact = app.synth().getStackByName(MEMBER_STACK_NAME);
    expect(artifact.assets).toEqual([]);
    expect(artifact.dependencies.map((d) => d.id)).toEqual([]); // no asset manifest to publish first
    expect(artifact.environment).toEqual(expect.objectContaining({ account: 'unknown-account', region: 'unknown-region' }));
    expect(Object.keys(json.Parameters).sort()).toEqual(['ExternalId', 'HubAccountId', 'HubRegion', 'MemberRoleName']);
    expect(json.Rules).toBeUndefined(); // no CheckBootstrapVersion
    const types = Object.values(json.Resources as Record<string, { Type: string }>).map((r) => r.Type).sort();
    expect(types).toEqual([
      'AWS::Events::Rule', 'AWS::IAM::Policy', 'AWS::IAM::Role', 'AWS::IAM::Role', 'AWS::SQS::Queue', 'AWS::SQS::QueuePolicy',
    ]); // no AWS::CDK::Metadata, no AWS::CloudFormation::Stack
    const text = JSON.stringify(json);
    for (const absent of ['BootstrapVersion', 'AssetParameters', 'cdk-hnb659fds', 'S3Bucket', 'S3Key', 'TemplateURL']) {
      expect({ absent, found: text.includes(absent) }).toEqual({ absent, found: false });
    }
  });

  test('parameters: hub account and region, role name with its default, an external id of at least 8 characters', () => {
    const accepts = (name: string, value: string) => new RegExp(json.Parameters[name].AllowedPattern).test(value);
    expect(json.Parameters.HubAccountId.Default).toBeUndefined();
    expect([accepts('HubAccountId', '123456789012'), accepts('HubAccountId', '12345678901'), accepts('HubAccountId', '1234567890123')])
      .toEqual([true, false, false]);
    expect(['eu-west-1', 'us-gov-west-1', 'ap-southeast-2', 'mars', 'eu-west'].map((r) => accepts('HubRegion', r)))
      .toEqual([true, true, true, false, false]);
    expect(json.Parameters.MemberRoleName.Default).toBe('sync-routes-member');
    expect([accepts('MemberRoleName', 'sync-routes-member'), accepts('MemberRoleName', 'a/b'), accepts('MemberRoleName', 'x'.repeat(65))])
      .toEqual([true, false, false]);
    expect(json.Parameters.ExternalId).toEqual(expect.objectContaining({ Type: 'String', MinLength: 8, MaxLength: 1224 }));
    expect(json.Parameters.ExternalId.Default).toBeUndefined();
    expect(json.Parameters.ExternalId.NoEcho).toBeUndefined(); // an external id is not a secret
  });

  test('the hub\'s memberExternalId accepts exactly what the ExternalId parameter accepts', () => {
    const { MinLength, MaxLength, AllowedPattern } = json.Parameters.ExternalId;
    const memberAccepts = (id: string) => id.length >= MinLength && id.length <= MaxLength && new RegExp(AllowedPattern).test(id);
    const hubAccepts = (id: string) => {
      try {
        addStacks(newApp({ ...ORG, memberExternalId: id }));
        return true;
      } catch {
        return false;
      }
    };
    const samples = ['x'.repeat(7), 'x'.repeat(8), 'sync-routes+=,.@:/_5f2c9a', 'x'.repeat(1224), 'x'.repeat(1225), 'with space', 'semi;colon'];
    expect(samples.map(hubAccepts)).toEqual(samples.map(memberAccepts));
    expect(samples.map(memberAccepts)).toEqual([false, true, true, true, false, false, false]);
  });

  test('memberRoleName context sets the MemberRoleName default', () => {
    const { member: named } = synthOrganization({ memberRoleName: 'netops-sync' });
    expect(named.toJSON().Parameters.MemberRoleName.Default).toBe('netops-sync');
  });

  test('member role: the hub account as principal, only with the external id and from the hub function\'s role', () => {
    const role = json.Resources[MEMBER_ROLE];
    expect(role.Properties.RoleName).toEqual({ Ref: 'MemberRoleName' });
    expect(role.Properties.MaxSessionDuration).toBeUndefined();
    expect(role.Properties.Description).toMatch(/sync-routes hub/);
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([{
      Action: 'sts:AssumeRole',
      Effect: 'Allow',
      Principal: { AWS: join(':iam::', { Ref: 'HubAccountId' }, ':root') },
      Condition: {
        StringEquals: { 'sts:ExternalId': { Ref: 'ExternalId' } },
        // hubRoleName(HubRegion): the hub names its function's role so.
        ArnEquals: { 'aws:PrincipalArn': join(':iam::', { Ref: 'HubAccountId' }, ':role/sync-routes-hub-', { Ref: 'HubRegion' }) },
      },
    }]);
  });

  test('member role: only in the hub\'s region (IAM names are global; one StackSet instance per region), as its output', () => {
    expect(json.Conditions.InHubRegion).toEqual({ 'Fn::Equals': [{ Ref: 'AWS::Region' }, { Ref: 'HubRegion' }] });
    expect(json.Resources[MEMBER_ROLE].Condition).toBe('InHubRegion');
    // Its permissions are inline: no separate policy resource that would need the condition too.
    const policies = Object.values(json.Resources as Record<string, any>).filter((r) => r.Type === 'AWS::IAM::Policy');
    expect(policies.map((p) => p.Properties.Roles)).toEqual([[{ Ref: FORWARDING_ROLE }]]);
    expect(json.Outputs.MemberRoleArn).toEqual(expect.objectContaining({ Condition: 'InHubRegion', Value: { 'Fn::GetAtt': [MEMBER_ROLE, 'Arn'] } }));
    // Everything else is in every region.
    const others = Object.entries(json.Resources as Record<string, any>).filter(([id]) => id !== MEMBER_ROLE);
    expect(others.filter(([, r]) => r.Condition !== undefined)).toEqual([]);
    expect(json.Outputs.ForwardingRuleArn).toEqual({ Description: expect.any(String), Value: { 'Fn::GetAtt': [FORWARDING_RULE, 'Arn'] } });
  });

  test('member role: route table reads on "*", route writes on this account\'s route tables in every region, no DeleteRoute', () => {
    expect(json.Resources[MEMBER_ROLE].Properties.Policies).toEqual([{
      PolicyName: 'SyncRoutes',
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          { Sid: 'ReadRouteTables', Effect: 'Allow', Action: 'ec2:DescribeRouteTables', Resource: '*' },
          {
            Sid: 'WriteRoutes',
            Effect: 'Allow',
            Action: ['ec2:CreateRoute', 'ec2:ReplaceRoute'],
            Resource: join(':ec2:*:', { Ref: 'AWS::AccountId' }, ':route-table/*'),
          },
        ],
      },
    }]);
    expect(JSON.stringify(json)).not.toContain('DeleteRoute');
  });

  test('forwarding rule: on the default bus, excluding the member role\'s sessions (the hub\'s writes here)', () => {
    const rule = json.Resources[FORWARDING_RULE].Properties;
    expect(rule.EventBusName).toBeUndefined();
    expect(rule.EventPattern.detail.$or[1].userIdentity.arn).toEqual([{
      'anything-but': { prefix: join(':sts::', { Ref: 'AWS::AccountId' }, ':assumed-role/', { Ref: 'MemberRoleName' }, '/') },
    }]);
  });

  test('forwarding target: the hub bus, through a role allowed events:PutEvents on exactly that bus, with a dead-letter queue', () => {
    const rule = json.Resources[FORWARDING_RULE];
    expect(rule.Properties.Targets).toEqual([{
      Id: 'Target0',
      Arn: HUB_BUS_ARN,
      RoleArn: { 'Fn::GetAtt': [FORWARDING_ROLE, 'Arn'] },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [DLQ, 'Arn'] } },
    }]);
    expect(rule.DependsOn).toEqual([expect.stringMatching(/^ForwardingRoleDefaultPolicy/)]); // the role: its GetAtt
    expect(json.Resources[FORWARDING_ROLE].Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' } },
    ]);
    // The forwarding role's whole identity policy, and no other identity permission but the member role's.
    const identity = allPolicyStatements(member).filter(({ resource }) => /AWS::IAM::(Policy|Role)/.test(resource))
      .filter(({ statement }) => !statement.Principal);
    expect(identity.filter(({ resource }) => !resource.startsWith(MEMBER_ROLE))).toEqual([{
      resource: expect.stringMatching(/^ForwardingRoleDefaultPolicy/),
      statement: { Action: 'events:PutEvents', Effect: 'Allow', Resource: HUB_BUS_ARN },
    }]);
    // EventBridge may write to the dead-letter queue for this rule only, over TLS only.
    const queuePolicy = Object.values(member.findResources('AWS::SQS::QueuePolicy'))[0];
    expect(queuePolicy.Properties.PolicyDocument.Statement).toEqual(expect.arrayContaining([
      expect.objectContaining({
        Effect: 'Allow', Action: 'sqs:SendMessage', Principal: { Service: 'events.amazonaws.com' },
        Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [FORWARDING_RULE, 'Arn'] } } },
      }),
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    ]));
    member.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
  });
});

describe('member and hub stay in step', () => {
  test.each([
    ['defaults', {}],
    ['deletes on', { propagateDeletes: 'true', destinations: '10.0.0.0/8' }],
    ['vpc-endpoint routes', { syncTargetKinds: 'network-interface,vpc-endpoint' }],
    ['both', { propagateDeletes: 'true', destinations: '10.0.0.0/8', syncTargetKinds: 'vpc-endpoint' }],
  ])('%s: the member role\'s EC2 actions are the hub role\'s', (_name, context) => {
    const { hub, member } = synthOrganization(context);
    expect(ec2Actions(hub)).toContain('ec2:CreateRoute'); // the comparison is about something
    expect(ec2Actions(member)).toEqual(ec2Actions(hub));
  });

  test.each([
    ['defaults', {}],
    ['deletes on', { propagateDeletes: 'true', destinations: '10.0.0.0/8' }],
  ])('%s: the forwarding rule\'s pattern is the hub\'s own, but for whose sessions it excludes', (_name, context) => {
    const { hub, member } = synthOrganization(context);
    // The excluded sessions' prefix differs (the member role's, the hub role's); all else is the same.
    const calls = (pattern: unknown) => JSON.parse(JSON.stringify(pattern), (key, value) => (key === 'prefix' ? '<own sessions>' : value));
    const patterned = (template: Template) => Object.values(template.findResources('AWS::Events::Rule'))
      .map((r) => r.Properties).filter((p) => p.EventPattern?.detail?.eventName);
    const [forwarded] = patterned(member).map((p) => calls(p.EventPattern));
    const hubRules = patterned(hub);
    expect(hubRules.filter((p) => p.EventBusName === undefined).map((p) => calls(p.EventPattern))).toEqual([forwarded]);
    // Every rule of the hub (its bus's too) acts on the calls the members forward.
    const of = (p: any) => [p.source, p['detail-type'], p.detail.eventSource, p.detail.eventName, p.detail.errorCode];
    for (const own of hubRules) {
      expect(of(own.EventPattern)).toEqual(of(forwarded));
    }
  });

  test('deletes on: DeleteRoute in the forwarding rule and the member role', () => {
    const { member } = synthOrganization({ propagateDeletes: 'true', destinations: '10.0.0.0/8' });
    const json = member.toJSON();
    expect(json.Resources[FORWARDING_RULE].Properties.EventPattern.detail.eventName).toContain('DeleteRoute');
    const [, write] = json.Resources[MEMBER_ROLE].Properties.Policies[0].PolicyDocument.Statement;
    expect([...write.Action].sort()).toEqual(['ec2:CreateRoute', 'ec2:DeleteRoute', 'ec2:ReplaceRoute']);
  });
});

describe('cdk-nag AwsSolutions on the member template', () => {
  test.each([
    ['defaults', {}],
    ['every option the member follows', { propagateDeletes: 'true', destinations: '10.0.0.0/8', syncTargetKinds: 'vpc-endpoint', memberRoleName: 'netops-sync' }],
  ])('%s: no unacknowledged finding', (_name, context) => {
    const app = newApp({ ...ORG, ...context });
    new SyncRoutesMemberStack(app, MEMBER_STACK_NAME);
    const { error, pluginReports } = nagCheck(app);
    expect(error).toBe('');
    expect(pluginReports).toEqual([]);
  });

  test('every acknowledgement has a reason', () => {
    const app = newApp(ORG);
    const stack = new SyncRoutesMemberStack(app, MEMBER_STACK_NAME);
    const acks = stack.node.findAll().flatMap((c) =>
      c.node.metadata.filter((m) => m.type === 'aws:cdk:acknowledged-rules').map((m) => m.data as Record<string, string>));
    const ids = acks.flatMap((a) => Object.keys(a)).map((id) => id.replace(/^[A-Za-z]+::/, '')).sort();
    expect(ids).toEqual([
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:route-table/*]',
      'AwsSolutions-SQS3',
    ]);
    for (const reason of acks.flatMap((a) => Object.values(a))) {
      expect(reason.length).toBeGreaterThan(40);
    }
  });
});

import { App, CfnParameter, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { SyncRoutes } from '../lib/sync-routes';
import { SyncRoutesStack } from '../lib/sync-routes-stack';
import { addStacks } from '../lib/app';
import { allPolicyStatements, functionEnvironment, nagCheck, newApp, PLACEHOLDER_ASSET, synthStack } from './helpers';

// Logical IDs are stable (they derive from construct paths), so tests may name them.
const ROLE = 'SyncRoutesRoleCAC96975';
const FUNCTION = 'SyncRoutesFunctionA0F0BDFA';
const TOPIC = 'SyncRoutesTopicCFB22A81';
const KEY = 'SyncRoutesTopicKeyDB76C324';
const LOG_GROUP = 'SyncRoutesLogGroup45E0F278';
const FAILED_QUEUE = 'SyncRoutesFailedInvocationsQueue2E2C5F95';
const DLQ = 'SyncRoutesRuleDeadLetterQueueA307A163';
const RULE = 'SyncRoutesRule4170BDAE';
const SWEEP_RULE = 'SyncRoutesSweepRule544DCBD8';
const WORK_QUEUE = 'SyncRoutesWorkQueueF237AF66';
const WORK_DLQ = 'SyncRoutesWorkDeadLetterQueueD864687C';
const LEDGER = 'SyncRoutesLedger5BEA0A6B';
const HUB_BUS = 'SyncRoutesHubBusDC9706CE';
const HUB_RULE = 'SyncRoutesHubRule1ABDED39';

/** Deletes on: they need destinations. */
const DELETES = { destinations: '10.0.0.0/8', propagateDeletes: 'true' };
/** A hub with only what it needs: the organization and the member template's external id. */
const HUB_MINIMAL = { organizationId: 'o-a1b2c3d4e5', memberExternalId: 'sync-routes-example-id' };
/** A hub, with every organization option. */
const HUB = { ...HUB_MINIMAL, memberAccounts: '111122223333, 444455556666', memberRegions: 'eu-west-1,us-east-1' };

/** `arn:${Partition}:ec2:${Region}:${AccountId}:<rest>` as CDK renders it. */
const ec2Arn = (rest: string) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ec2:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:${rest}`]],
});

describe('default deployment', () => {
  const { template } = synthStack();

  test('function: provided.al2023, bootstrap, x86_64, 128 MB, 60 s, JSON logs, topic ARN and queue URL', () => {
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Architectures: ['x86_64'],
      MemorySize: 128,
      Timeout: 60,
      Role: { 'Fn::GetAtt': [ROLE, 'Arn'] },
      LoggingConfig: { LogFormat: 'JSON', ApplicationLogLevel: 'INFO', LogGroup: { Ref: LOG_GROUP } },
      // SYNC_TARGET_KINDS is left to the function's default; continuations go to the work queue.
      Environment: { Variables: Match.objectEquals({ SNS_TOPIC_ARN: { Ref: TOPIC }, SYNC_QUEUE_URL: { Ref: WORK_QUEUE } }) },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  test('rule: successful route and route table calls from CloudTrail, not the function\'s own', () => {
    template.resourceCountIs('AWS::Events::Rule', 2); // and the sweep
    const rule = template.findResources('AWS::Events::Rule')[RULE];
    expect(rule.Properties.EventPattern).toEqual({
      'source': ['aws.ec2'],
      'detail-type': ['AWS API Call via CloudTrail'],
      'detail': {
        eventSource: ['ec2.amazonaws.com'],
        // No DeleteRoute: deletes are off by default.
        eventName: ['CreateRoute', 'ReplaceRoute', 'CreateRouteTable', 'ReplaceRouteTableAssociation'],
        errorCode: [{ exists: false }],
        // anything-but never matches an absent field: calls from another account may have no arn.
        $or: [
          { userIdentity: { arn: [{ exists: false }] } },
          {
            userIdentity: {
              arn: [{
                'anything-but': {
                  prefix: {
                    'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':sts::', { Ref: 'AWS::AccountId' }, ':assumed-role/', { Ref: ROLE }, '/']],
                  },
                },
              }],
            },
          },
        ],
      },
    });
  });

  test('rule target: the work queue, with retry policy and dead-letter queue', () => {
    const rule = template.findResources('AWS::Events::Rule')[RULE];
    expect(rule.Properties.Targets).toEqual([expect.objectContaining({
      Arn: { 'Fn::GetAtt': [WORK_QUEUE, 'Arn'] },
      RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 21600 },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [DLQ, 'Arn'] } },
    })]);
    // The whole event is the message body: no Input, InputPath or InputTransformer.
    expect(Object.keys(rule.Properties.Targets[0]).sort()).toEqual(['Arn', 'DeadLetterConfig', 'Id', 'RetryPolicy']);
    // EventBridge may write to the DLQ, for this rule only.
    const dlqPolicy = Object.values(template.findResources('AWS::SQS::QueuePolicy', { Properties: { Queues: [{ Ref: DLQ }] } }))[0];
    expect(dlqPolicy.Properties.PolicyDocument.Statement).toContainEqual(expect.objectContaining({
      Effect: 'Allow',
      Action: 'sqs:SendMessage',
      Principal: { Service: 'events.amazonaws.com' },
      Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [RULE, 'Arn'] } } },
    }));
  });

  test('async invoke config: retries, maximum event age, on-failure SQS destination', () => {
    template.resourceCountIs('AWS::Lambda::EventInvokeConfig', 1);
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: FUNCTION },
      Qualifier: '$LATEST',
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 21600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [FAILED_QUEUE, 'Arn'] } } },
    });
  });

  test('queues: encrypted, TLS only, the failure queues 14 days', () => {
    template.resourceCountIs('AWS::SQS::Queue', 4);
    const queues = template.findResources('AWS::SQS::Queue');
    for (const queue of Object.values(queues)) {
      expect(queue.Properties).toEqual(expect.objectContaining({ SqsManagedSseEnabled: true }));
    }
    for (const id of [FAILED_QUEUE, DLQ, WORK_DLQ]) {
      expect({ id, retention: queues[id].Properties.MessageRetentionPeriod }).toEqual({ id, retention: 1209600 });
    }
    for (const policy of Object.values(template.findResources('AWS::SQS::QueuePolicy'))) {
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(expect.objectContaining({
        Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }));
    }
  });

  test('topic: KMS encrypted, TLS enforced, CloudWatch alarms of this account may publish', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [KEY, 'Arn'] } });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    const statements = Object.values(template.findResources('AWS::SNS::TopicPolicy'))[0].Properties.PolicyDocument.Statement;
    expect(statements).toContainEqual(expect.objectContaining({
      Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    }));
    expect(statements).toContainEqual(expect.objectContaining({
      Effect: 'Allow',
      Action: 'sns:Publish',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Condition: expect.objectContaining({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } }),
    }));
    const keyStatements = Object.values(template.findResources('AWS::KMS::Key'))[0].Properties.KeyPolicy.Statement;
    expect(keyStatements).toContainEqual(expect.objectContaining({
      Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
    }));
  });

  test('alarms: function errors, the three failure queues, rejected payloads and lag, all notifying the topic', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 6);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'SyncRoutes', MetricName: 'EventLag', ExtendedStatistic: 'p99', Period: 300,
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: FUNCTION } }],
      Threshold: 60000, EvaluationPeriods: 2, ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching', AlarmActions: [{ Ref: TOPIC }],
    });
    const common = {
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: TOPIC }],
    };
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      ...common, Namespace: 'AWS/Lambda', MetricName: 'Errors', Statistic: 'Sum', Period: 300,
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: FUNCTION } }],
    });
    template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: LOG_GROUP },
      FilterPattern: '{ $.decision = "rejected" }',
      MetricTransformations: [{ MetricNamespace: 'SyncRoutes', MetricName: 'RejectedEvents', MetricValue: '1' }],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      ...common, Namespace: 'SyncRoutes', MetricName: 'RejectedEvents', Statistic: 'Sum', Period: 300,
    });
    for (const queue of [FAILED_QUEUE, DLQ, WORK_DLQ]) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        ...common, Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', Statistic: 'Maximum',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue, 'QueueName'] } }],
      });
    }
  });

  test('function role: exactly these statements, no managed policy', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } }] },
      ManagedPolicyArns: Match.absent(),
      Policies: Match.absent(),
    });
    // One policy: continuations go to the queue, so there is no self-invoke policy any more.
    template.resourceCountIs('AWS::IAM::Policy', 1);
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: ROLE }],
      PolicyDocument: {
        Statement: [
          { Sid: 'WriteOwnLogs', Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': [LOG_GROUP, 'Arn'] } },
          // DescribeRouteTables supports no resource-level permissions.
          { Sid: 'ReadRouteTables', Effect: 'Allow', Action: 'ec2:DescribeRouteTables', Resource: '*' },
          { Sid: 'WriteRoutes', Effect: 'Allow', Action: ['ec2:CreateRoute', 'ec2:ReplaceRoute'], Resource: ec2Arn('route-table/*') },
          { Sid: 'PublishAlerts', Effect: 'Allow', Action: 'sns:Publish', Resource: { Ref: TOPIC } },
          { Sid: 'EncryptAlerts', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: { 'Fn::GetAtt': [KEY, 'Arn'] } },
          // Continuations: work the function could not finish goes back on its own queue.
          { Sid: 'ContinueOnQueue', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: { 'Fn::GetAtt': [WORK_QUEUE, 'Arn'] } },
          // Lambda's on-failure destination sends with the function's role; nothing else.
          { Sid: 'KeepFailedEvents', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: { 'Fn::GetAtt': [FAILED_QUEUE, 'Arn'] } },
          // The event source mapping polls with the function's role (SqsEventSource's grant).
          {
            Effect: 'Allow',
            Action: ['sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:ReceiveMessage'],
            Resource: { 'Fn::GetAtt': [WORK_QUEUE, 'Arn'] },
          },
        ],
      },
    });
  });

  test('the endpoint types are read only when vpc-endpoint routes are synced', () => {
    const readActions = (t: Template) =>
      allPolicyStatements(t)
        .map(({ statement }) => statement)
        .filter((s) => s.Sid === 'ReadRouteTables')
        .map((s) => s.Action);
    expect(readActions(template)).toEqual(['ec2:DescribeRouteTables']);
    const withEndpoints = synthStack({ syncTargetKinds: 'network-interface,vpc-endpoint' }).template;
    expect(readActions(withEndpoints)).toEqual([['ec2:DescribeRouteTables', 'ec2:DescribeVpcEndpoints']]);
  });

  test('no wildcard action in any Allow statement of the template', () => {
    const statements = allPolicyStatements(template);
    expect(statements.length).toBeGreaterThan(10);
    for (const { resource, statement } of statements) {
      expect({ resource, notAction: statement.NotAction }).toEqual({ resource, notAction: undefined });
      if (statement.Effect !== 'Allow') {
        // The only Deny statements are the TLS guards (aws:SecureTransport false): denying
        // every action over plain HTTP is what they are for.
        expect({ resource, condition: statement.Condition }).toEqual({ resource, condition: { Bool: { 'aws:SecureTransport': 'false' } } });
        continue;
      }
      const actions: string[] = [statement.Action].flat();
      for (const action of actions) {
        expect({ resource, action }).toEqual({ resource, action: expect.stringMatching(/^[a-z0-9-]+:[A-Za-z0-9]+$/) });
      }
    }
  });

  test('alert e-mail from the stack parameter: conditional subscription', () => {
    template.hasParameter('alertEmail', { Type: 'String', Default: '' });
    template.resourceCountIs('AWS::SNS::Subscription', 1);
    const [subscription] = Object.values(template.findResources('AWS::SNS::Subscription'));
    expect(subscription.Properties).toEqual({ Protocol: 'email', Endpoint: { Ref: 'alertEmail' }, TopicArn: { Ref: TOPIC } });
    expect(template.toJSON().Conditions[subscription.Condition]).toEqual({ 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'alertEmail' }, ''] }] });
  });

  test('no trail unless asked', () => {
    template.resourceCountIs('AWS::CloudTrail::Trail', 0);
    template.resourceCountIs('AWS::S3::Bucket', 0);
  });

  test('outputs: function, topic, rule, queues and the invoke command', () => {
    template.hasOutput('FunctionName', { Value: { Ref: FUNCTION } });
    template.hasOutput('TopicArn', { Value: { Ref: TOPIC } });
    template.hasOutput('RuleName', { Value: { Ref: RULE } });
    template.hasOutput('WorkQueueUrl', { Value: { Ref: WORK_QUEUE } });
    template.hasOutput('WorkDeadLetterQueueUrl', { Value: { Ref: WORK_DLQ } });
    template.hasOutput('FailedInvocationsQueueUrl', { Value: { Ref: FAILED_QUEUE } });
    template.hasOutput('RuleDeadLetterQueueUrl', { Value: { Ref: DLQ } });
    template.hasOutput('InvokeCommand', {
      Value: {
        'Fn::Join': ['', [
          'aws lambda invoke --region ', { Ref: 'AWS::Region' }, ' --function-name ', { Ref: FUNCTION },
          ' --cli-binary-format raw-in-base64-out --payload fileb://events/manual-dry-run.json response.json',
        ]],
      },
    });
  });
});

describe('options', () => {
  test('alertEmail context: unconditional subscription, no parameter', () => {
    const { template } = synthStack({ alertEmail: 'netops@example.com' });
    expect(template.toJSON().Parameters.alertEmail).toBeUndefined();
    template.resourceCountIs('AWS::SNS::Subscription', 1);
    const [subscription] = Object.values(template.findResources('AWS::SNS::Subscription'));
    expect(subscription).toEqual(expect.objectContaining({
      Properties: { Protocol: 'email', Endpoint: 'netops@example.com', TopicArn: { Ref: TOPIC } },
    }));
    expect(subscription.Condition).toBeUndefined();
  });

  test('construct without alertEmail: no subscription', () => {
    const stack = new Stack(newApp(), 'Bare');
    new SyncRoutes(stack, 'SyncRoutes', { code: lambda.Code.fromAsset(PLACEHOLDER_ASSET) });
    Template.fromStack(stack).resourceCountIs('AWS::SNS::Subscription', 0);
  });

  test('bad option values are refused at synth', () => {
    expect(() => synthStack({ alertEmail: 'not-an-email' })).toThrow(/alertEmail/);
    expect(() => synthStack({ vpcIds: 'vpc-1,subnet-2' })).toThrow(/vpcIds/);
    expect(() => synthStack({ syncTargetKinds: 'network-interface,carrier' })).toThrow(/syncTargetKinds/);
    expect(() => synthStack({ architecture: 'sparc' })).toThrow(/architecture/);
  });

  test('vpcIds: route writes limited with ec2:Vpc to those VPC ARNs', () => {
    const { template } = synthStack({ vpcIds: 'vpc-0123456789abcdef0, vpc-0fedcba9876543210' });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([{
          Sid: 'WriteRoutes',
          Effect: 'Allow',
          Action: ['ec2:CreateRoute', 'ec2:ReplaceRoute'],
          Resource: ec2Arn('route-table/*'),
          Condition: { ArnEquals: { 'ec2:Vpc': [ec2Arn('vpc/vpc-0123456789abcdef0'), ec2Arn('vpc/vpc-0fedcba9876543210')] } },
        }]),
      },
    });
  });

  test('createTrail: multi-region trail of write management events into an encrypted, private, TLS-only bucket', () => {
    const { template } = synthStack({ createTrail: 'true' });
    template.resourceCountIs('AWS::CloudTrail::Trail', 1);
    template.hasResourceProperties('AWS::CloudTrail::Trail', {
      IsLogging: true,
      IsMultiRegionTrail: true,
      EnableLogFileValidation: true,
      EventSelectors: [{ IncludeManagementEvents: true, ReadWriteType: 'WriteOnly' }],
    });
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      }),
    });
    const statements = Object.values(template.findResources('AWS::S3::BucketPolicy'))[0].Properties.PolicyDocument.Statement;
    expect(statements).toContainEqual(expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }));
    expect(statements).toContainEqual(expect.objectContaining({ Effect: 'Allow', Principal: { Service: 'cloudtrail.amazonaws.com' }, Action: 's3:PutObject' }));
  });

  test('createTrail=false and other false spellings: no trail', () => {
    for (const value of ['false', false, '']) {
      synthStack({ createTrail: value }).template.resourceCountIs('AWS::CloudTrail::Trail', 0);
    }
  });

  test('defaults: sweep every 15 minutes to the work queue with the same retries and dead-letter queue, no reserved concurrency, dashboard output', () => {
    const { template } = synthStack();
    const sweeps = template.findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: 'rate(15 minutes)' } });
    expect(Object.keys(sweeps)).toHaveLength(1);
    const [sweep] = Object.values(sweeps) as any[];
    expect(Object.keys(sweeps)).toEqual([SWEEP_RULE]);
    expect(sweep.Properties.Targets).toHaveLength(1);
    expect(sweep.Properties.Targets[0]).toMatchObject({
      Arn: { 'Fn::GetAtt': [WORK_QUEUE, 'Arn'] },
      RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 21600 },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [DLQ, 'Arn'] } },
    });
    // Reserving any concurrency fails the deploy on a new account (quota 10).
    template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: Match.absent() });
    template.hasOutput('DashboardName', { Value: { Ref: Match.stringLikeRegexp('Dashboard') } });
    const env = template.findResources('AWS::Lambda::Function')[FUNCTION].Properties.Environment.Variables;
    expect(Object.keys(env).sort()).toEqual(['SNS_TOPIC_ARN', 'SYNC_QUEUE_URL']);
  });

  test('dashboard: lag p50/p99, routes written, failed tables, throttles, invocations, errors, work queue, failure queues', () => {
    const { template } = synthStack();
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as any[];
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const words of ['EventLag', 'p50', 'p99', 'RoutesWritten', 'TablesFailed', 'Throttled', 'TablesDeferred',
      'Invocations', 'Errors', 'ApproximateNumberOfMessagesVisible', 'ApproximateAgeOfOldestMessage', 'SyncRoutes']) {
      expect(body).toContain(words);
    }
    // Work queue depth and age, and the depth of each failure queue, including the work DLQ.
    for (const queue of [WORK_QUEUE, WORK_DLQ, FAILED_QUEUE, DLQ]) {
      expect(body).toContain(JSON.stringify({ 'Fn::GetAtt': [queue, 'QueueName'] }));
    }
  });

  test('sweep=off: no schedule; sweepSchedule sets it; lagAlarmThreshold and reservedConcurrency', () => {
    const off = synthStack({ sweep: 'off' }).template;
    expect(Object.keys(off.findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: Match.anyValue() } }))).toHaveLength(0);
    const { template } = synthStack({ sweepSchedule: 'rate(5 minutes)', lagAlarmThreshold: '30', reservedConcurrency: '3' });
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)' });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'EventLag', Threshold: 30000 });
    template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 3 });
    expect(() => synthStack({ sweep: 'sometimes' })).toThrow(/sweep must be on or off/);
    expect(() => synthStack({ sweepSchedule: 'every 5 minutes' })).toThrow(/schedule expression/);
    expect(() => synthStack({ reservedConcurrency: '0' })).toThrow(/reservedConcurrency/);
  });

  test('destinations and vpcIds reach the function; propagateDeletes adds DeleteRoute to the rule and the role', () => {
    const { template } = synthStack({ vpcIds: 'vpc-0123456789abcdef0', destinations: '10.0.0.0/8,pl-0123456789abcdef0', propagateDeletes: 'true' });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: {
          SNS_TOPIC_ARN: { Ref: TOPIC },
          SYNC_VPC_IDS: 'vpc-0123456789abcdef0',
          SYNC_DESTINATIONS: '10.0.0.0/8,pl-0123456789abcdef0',
          SYNC_PROPAGATE_DELETES: 'true',
        },
      },
    });
    const rule = template.findResources('AWS::Events::Rule')[RULE];
    expect(rule.Properties.EventPattern.detail.eventName).toEqual(
      ['CreateRoute', 'ReplaceRoute', 'CreateRouteTable', 'ReplaceRouteTableAssociation', 'DeleteRoute']);
    const writes = allPolicyStatements(template).find(({ statement }) => statement.Sid === 'WriteRoutes')!.statement;
    expect(writes.Action).toEqual(['ec2:CreateRoute', 'ec2:DeleteRoute', 'ec2:ReplaceRoute']); // CDK sorts them
    expect(writes.Condition).toBeDefined();
  });

  test('without deletes there is no DeleteRoute anywhere, and deletes need destinations', () => {
    const { template } = synthStack({ destinations: '10.0.0.0/8' });
    expect(JSON.stringify(template.toJSON())).not.toContain('DeleteRoute');
    expect(() => synthStack({ propagateDeletes: 'true' })).toThrow(/propagateDeletes needs destinations/);
    expect(() => synthStack({ destinations: '10.0.0.0/33x' })).toThrow(/destinations/);
  });

  test('regions: one stack per region, the trail only in the first; none: the single SyncRoutes stack', () => {
    expect(addStacks(newApp()).map((s) => s.stackName)).toEqual(['SyncRoutes']);
    const stacks = addStacks(newApp({ regions: 'us-east-1, eu-west-1', createTrail: 'true' }));
    expect(stacks.map((s) => [s.stackName, s.region])).toEqual([
      ['SyncRoutes-us-east-1', 'us-east-1'],
      ['SyncRoutes-eu-west-1', 'eu-west-1'],
    ]);
    Template.fromStack(stacks[0]).resourceCountIs('AWS::CloudTrail::Trail', 1);
    Template.fromStack(stacks[1]).resourceCountIs('AWS::CloudTrail::Trail', 0);
    Template.fromStack(stacks[1]).resourceCountIs('AWS::Lambda::Function', 1);
    expect(() => addStacks(newApp({ regions: 'mars' }))).toThrow(/not an AWS region/);
  });

  test('httpEndpoint off (default): no API Gateway resource at all', () => {
    const resources = Object.values(synthStack().template.toJSON().Resources) as Array<{ Type: string }>;
    expect(resources.filter((r) => r.Type.startsWith('AWS::ApiGateway::'))).toEqual([]);
  });

  test('httpEndpoint: the original PATCH path with an API key, a request model, a usage plan, access logs and outputs', () => {
    const { template } = synthStack({ httpEndpoint: 'true', httpBurstLimit: '20', httpRateLimit: '2' });
    template.hasResourceProperties('AWS::ApiGateway::Resource', { PathPart: '{route-table-id}' });
    template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'PATCH',
      ApiKeyRequired: true,
      Integration: { Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST' },
      RequestParameters: { 'method.request.path.vpc-id': true, 'method.request.path.route-table-id': true },
      RequestValidatorId: Match.anyValue(),
    });
    template.hasResourceProperties('AWS::ApiGateway::Model', {
      ContentType: 'application/json',
      Schema: {
        type: 'object',
        required: ['destination-cidr-block'],
        properties: { 'destination-cidr-block': { type: 'string' }, 'dry-run': { type: 'boolean' } },
        additionalProperties: false,
      },
    });
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true });
    template.hasResourceProperties('AWS::ApiGateway::UsagePlan', { Throttle: { BurstLimit: 20, RateLimit: 2 } });
    template.resourceCountIs('AWS::ApiGateway::ApiKey', 1);
    template.hasResourceProperties('AWS::ApiGateway::Stage', { AccessLogSetting: { DestinationArn: Match.anyValue() } });
    // The API may invoke the function for that method and path only (no console test stage).
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission', {
      Properties: { Principal: 'apigateway.amazonaws.com' },
    })) as any[];
    expect(permissions).toHaveLength(1);
    expect(JSON.stringify(permissions[0].Properties.SourceArn)).toContain('/PATCH/vpcs/*/route-tables/*');
    template.hasOutput('ApiUrl', {});
    template.hasOutput('ApiKeyCommand', { Value: Match.objectLike({ 'Fn::Join': Match.anyValue() }) });
    expect(JSON.stringify(template.toJSON().Outputs.ApiKeyCommand)).toContain('--include-value');
  });

  test('httpEndpoint defaults: the original tool\'s burst 10 and rate 1, stage v1', () => {
    const { template } = synthStack({ httpEndpoint: 'true' });
    template.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
      Throttle: { BurstLimit: 10, RateLimit: 1 },
    });
    template.hasResourceProperties('AWS::ApiGateway::Stage', { StageName: 'v1' });
    expect(apiUrlStageName(template)).toBe('v1');
    expect(() => synthStack({ httpEndpoint: 'true', httpRateLimit: '0' })).toThrow(/httpRateLimit/);
  });

  test('httpStageName: the stage and the ApiUrl output follow it', () => {
    const { template } = synthStack({ httpEndpoint: 'true', httpStageName: 'prod' });
    template.resourceCountIs('AWS::ApiGateway::Stage', 1);
    template.hasResourceProperties('AWS::ApiGateway::Stage', { StageName: 'prod' });
    expect(apiUrlStageName(template)).toBe('prod');
    expect(() => synthStack({ httpEndpoint: 'true', httpStageName: 'v 1' })).toThrow(/httpStageName: 'v 1' is not a stage name/);
  });

  test('architecture and syncTargetKinds', () => {
    const { template } = synthStack({ architecture: 'arm64', syncTargetKinds: 'network-interface,transit-gateway' });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Architectures: ['arm64'],
      Environment: { Variables: { SNS_TOPIC_ARN: { Ref: TOPIC }, SYNC_TARGET_KINDS: 'network-interface,transit-gateway' } },
    });
  });
});

describe('work queue: EventBridge -> SQS -> event source mapping', () => {
  const { template } = synthStack();

  test('encrypted, TLS only, 6x the function timeout, 4 days, dead-letter queue after 5 receives', () => {
    const queue = template.findResources('AWS::SQS::Queue')[WORK_QUEUE];
    expect(queue.Properties).toEqual(expect.objectContaining({
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 360,
      MessageRetentionPeriod: 345600,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [WORK_DLQ, 'Arn'] }, maxReceiveCount: 5 },
    }));
    // The guidance follows the function's timeout.
    const stack = new Stack(newApp(), 'Timeout');
    new SyncRoutes(stack, 'SyncRoutes', { code: lambda.Code.fromAsset(PLACEHOLDER_ASSET), timeout: Duration.seconds(30) });
    Template.fromStack(stack).hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 180, RedrivePolicy: Match.anyValue() });
  });

  test('queue policy: TLS only, and only the two rules of this stack may send', () => {
    const [policy] = Object.values(template.findResources('AWS::SQS::QueuePolicy', { Properties: { Queues: [{ Ref: WORK_QUEUE }] } }));
    const statements: Array<Record<string, any>> = policy.Properties.PolicyDocument.Statement;
    const allows = statements.filter((s) => s.Effect === 'Allow');
    expect(allows).toHaveLength(2);
    expect(allows.map((s) => s.Condition)).toEqual([RULE, SWEEP_RULE].map((rule) => ({
      ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [rule, 'Arn'] } },
    })));
    for (const allow of allows) {
      expect(allow.Principal).toEqual({ Service: 'events.amazonaws.com' });
      expect([allow.Action].flat()).toContain('sqs:SendMessage');
      expect([allow.Action].flat()).not.toContain('sqs:ReceiveMessage');
    }
    expect(statements.filter((s) => s.Effect === 'Deny')).toEqual([
      expect.objectContaining({ Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    ]);
  });

  test('event source mapping: batches of 100, a 1 s window, partial batch responses, at most 2 at once', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    const [mapping] = Object.values(template.findResources('AWS::Lambda::EventSourceMapping'));
    expect(mapping.Properties).toEqual(expect.objectContaining({
      EventSourceArn: { 'Fn::GetAtt': [WORK_QUEUE, 'Arn'] },
      FunctionName: { Ref: FUNCTION },
      BatchSize: 10,
      MaximumBatchingWindowInSeconds: 0,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
    }));
  });

  test('maxConcurrency and batchingWindow from context', () => {
    const { template: t } = synthStack({ maxConcurrency: '5', batchingWindow: '3' });
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      ScalingConfig: { MaximumConcurrency: 5 },
      MaximumBatchingWindowInSeconds: 3,
      // A window lets a batch hold up to 100 messages.
      BatchSize: 100,
    });
    // Still nothing reserved.
    t.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: Match.absent() });
  });

  test('bad maxConcurrency and batchingWindow values are refused with the accepted range', () => {
    for (const value of ['1', '1001', '2.5', '0']) {
      expect(() => synthStack({ maxConcurrency: value })).toThrow(/maxConcurrency must be a whole number from 2 to 1000/);
    }
    expect(() => synthStack({ maxConcurrency: 'two' })).toThrow(/maxConcurrency must be a number/);
    for (const value of ['301', '1.5']) {
      expect(() => synthStack({ batchingWindow: value })).toThrow(/batchingWindow must be whole seconds from 0 to 300/);
    }
    expect(() => synthStack({ batchingWindow: 'soon' })).toThrow(/batchingWindow must be a number/);
    // No window: SQS allows batches of at most 10.
    synthStack({ batchingWindow: '0' }).template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      MaximumBatchingWindowInSeconds: 0,
      BatchSize: 10,
    });
  });

  test('the function may loop through its own queue (continuations)', () => {
    template.hasResourceProperties('AWS::Lambda::Function', { RecursiveLoop: 'Allow' });
  });

  test('reservedConcurrency: only when given; below maxConcurrency it warns', () => {
    const { stack, template: t } = synthStack({ reservedConcurrency: '1' });
    t.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 1 });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('reservedConcurrency 1 is below maxConcurrency 2'));
    expect(warnings).toHaveLength(1);
    const enough = synthStack({ reservedConcurrency: '4', maxConcurrency: '4' });
    enough.template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 4 });
    expect(Annotations.fromStack(enough.stack).findWarning('*', Match.stringLikeRegexp('reservedConcurrency'))).toHaveLength(0);
  });

  test('the role sends only to the work queue (continuations) and the failed-invocations queue; nobody invokes the function', () => {
    const statements = allPolicyStatements(template).filter(({ resource }) => resource.includes('AWS::IAM::'));
    const sends = statements.filter(({ statement }) => [statement.Action].flat().includes('sqs:SendMessage'));
    expect(sends.map(({ statement }) => [statement.Sid, statement.Resource])).toEqual([
      ['ContinueOnQueue', { 'Fn::GetAtt': [WORK_QUEUE, 'Arn'] }],
      ['KeepFailedEvents', { 'Fn::GetAtt': [FAILED_QUEUE, 'Arn'] }],
    ]);
    const json = JSON.stringify(template.toJSON());
    expect(json).not.toContain('lambda:InvokeFunction');
    expect(json).not.toContain('HandOff');
    // Only API Gateway (with httpEndpoint) may invoke the function; by default nothing.
    template.resourceCountIs('AWS::Lambda::Permission', 0);
  });

  test('direct asynchronous invocations keep their retries and on-failure queue; the errors alarm stays', () => {
    template.resourceCountIs('AWS::Lambda::EventInvokeConfig', 1);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: 'AWS/Lambda', MetricName: 'Errors' });
  });
});

describe('propagateDeletes: the ledger of the function\'s own routes, and the delete budget', () => {
  const { template } = synthStack(DELETES);

  test('ledger: on-demand, RouteTableId and Destination, point-in-time recovery, kept on delete and on replacement', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    const ledger = template.findResources('AWS::DynamoDB::Table')[LEDGER];
    expect(ledger).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(ledger.Properties).toEqual(expect.objectContaining({
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'RouteTableId', KeyType: 'HASH' }, { AttributeName: 'Destination', KeyType: 'RANGE' }],
      AttributeDefinitions: [{ AttributeName: 'RouteTableId', AttributeType: 'S' }, { AttributeName: 'Destination', AttributeType: 'S' }],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    }));
    // No index: the function only reads and writes items by key.
    expect(ledger.Properties.GlobalSecondaryIndexes).toBeUndefined();
    expect(ledger.Properties.LocalSecondaryIndexes).toBeUndefined();
  });

  test('role: exactly dynamodb:BatchGetItem and BatchWriteItem, on the ledger table\'s ARN only', () => {
    const dynamo = allPolicyStatements(template).filter(({ statement }) =>
      [statement.Action].flat().some((a: string) => a.startsWith('dynamodb:')));
    expect(dynamo.map(({ statement }) => statement)).toEqual([{
      Sid: 'RecordOwnRoutes',
      Effect: 'Allow',
      Action: ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'],
      Resource: { 'Fn::GetAtt': [LEDGER, 'Arn'] },
    }]);
    expect(dynamo[0].resource).toContain('AWS::IAM::Policy');
  });

  test('function: the ledger table and a delete budget of 10 by default', () => {
    expect(functionEnvironment(template)).toEqual(expect.objectContaining({
      SYNC_PROPAGATE_DELETES: 'true',
      SYNC_LEDGER_TABLE: { Ref: LEDGER },
      SYNC_MAX_DELETES: '10',
    }));
    template.hasOutput('LedgerTableName', { Value: { Ref: LEDGER } });
  });

  test('maxDeletes from context sets the budget', () => {
    expect(functionEnvironment(synthStack({ ...DELETES, maxDeletes: '3' }).template).SYNC_MAX_DELETES).toBe('3');
    const stack = new Stack(newApp(), 'Construct');
    new SyncRoutes(stack, 'SyncRoutes', {
      code: lambda.Code.fromAsset(PLACEHOLDER_ASSET), destinations: ['10.0.0.0/8'], propagateDeletes: true, maxDeletes: 250,
    });
    expect(functionEnvironment(Template.fromStack(stack)).SYNC_MAX_DELETES).toBe('250');
  });

  test('bad maxDeletes values are refused, and maxDeletes needs propagateDeletes', () => {
    for (const value of ['0', '-1', '2.5', '100001']) {
      expect(() => synthStack({ ...DELETES, maxDeletes: value })).toThrow(/maxDeletes must be a whole number from 1 to 100000/);
    }
    expect(() => synthStack({ ...DELETES, maxDeletes: 'ten' })).toThrow(/maxDeletes must be a number/);
    expect(() => synthStack({ maxDeletes: '5' })).toThrow(/maxDeletes needs propagateDeletes/);
  });

  test('dashboard: plans over the delete budget and ledger write failures, summed', () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as any[];
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const name of ['DeleteBudgetExceeded', 'LedgerWriteFailures']) {
      expect(body).toContain(`[\\"SyncRoutes\\",\\"${name}\\",\\"FunctionName\\",\\"",{"Ref":"${FUNCTION}"},"\\",{\\"label\\"`);
    }
    expect(body).toMatch(/LedgerWriteFailures[^\]]*\\"stat\\":\\"Sum\\"/);
  });

  test('without propagateDeletes: no table, no ledger variables, no DynamoDB permission, no widget', () => {
    const off = synthStack({ destinations: '10.0.0.0/8' }).template;
    off.resourceCountIs('AWS::DynamoDB::Table', 0);
    const env = functionEnvironment(off);
    for (const name of ['SYNC_LEDGER_TABLE', 'SYNC_MAX_DELETES', 'SYNC_PROPAGATE_DELETES']) {
      expect(env[name]).toBeUndefined();
    }
    const json = JSON.stringify(off.toJSON());
    expect(json).not.toContain('dynamodb:');
    expect(json).not.toContain('DeleteBudgetExceeded');
    expect(off.toJSON().Outputs.LedgerTableName).toBeUndefined();
  });
});

describe('organization hub (organizationId)', () => {
  const { template } = synthStack(HUB);

  test('bus sync-routes: principals of the organization may put events, nobody else', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    template.hasResourceProperties('AWS::Events::EventBus', { Name: 'sync-routes' });
    template.resourceCountIs('AWS::Events::EventBusPolicy', 1);
    const [policy] = Object.values(template.findResources('AWS::Events::EventBusPolicy')) as any[];
    expect(policy.Properties.EventBusName).toEqual({ Ref: HUB_BUS });
    expect(policy.Properties.Statement).toEqual({
      Sid: 'cdk-OrganizationForwardsRouteChanges',
      Effect: 'Allow',
      Principal: '*',
      Action: 'events:PutEvents',
      Resource: { 'Fn::GetAtt': [HUB_BUS, 'Arn'] },
      Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-a1b2c3d4e5' } },
    });
    template.hasOutput('HubEventBusArn', { Value: { 'Fn::GetAtt': [HUB_BUS, 'Arn'] } });
  });

  test('hub rule: the default rule\'s pattern, also leaving out the member role\'s sessions, to the work queue', () => {
    const rules = template.findResources('AWS::Events::Rule');
    const hubRule = rules[HUB_RULE];
    expect(hubRule.Properties.EventBusName).toEqual({ Ref: HUB_BUS });
    const own = rules[RULE].Properties.EventPattern;
    const forwarded = hubRule.Properties.EventPattern;
    // Everything but the caller exclusion is the default bus rule's pattern.
    const { $or: ownOr, ...ownRest } = own.detail;
    const { $or: forwardedOr, ...forwardedRest } = forwarded.detail;
    expect({ ...forwarded, detail: forwardedRest }).toEqual({ ...own, detail: ownRest });
    expect(forwardedOr[0]).toEqual(ownOr[0]); // no userIdentity.arn: always accepted
    // One anything-but with a wildcard list (two anything-but matchers on one field would be OR'ed).
    expect(forwardedOr[1]).toEqual({
      userIdentity: {
        arn: [{
          'anything-but': {
            wildcard: [
              { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':sts::', { Ref: 'AWS::AccountId' }, ':assumed-role/', { Ref: ROLE }, '/*']] },
              { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':sts::*:assumed-role/sync-routes-member/*']] },
            ],
          },
        }],
      },
    });
    // The same target as the default bus rule's: the work queue, its retries, its dead-letter queue.
    expect(hubRule.Properties.Targets).toEqual(rules[RULE].Properties.Targets);
    // ... which adds the hub rule to those the work queue admits.
    const [queuePolicy] = Object.values(template.findResources('AWS::SQS::QueuePolicy', { Properties: { Queues: [{ Ref: WORK_QUEUE }] } }));
    const sources = queuePolicy.Properties.PolicyDocument.Statement.filter((s: any) => s.Effect === 'Allow').map((s: any) => s.Condition);
    expect(sources).toContainEqual({ ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [HUB_RULE, 'Arn'] } } });
  });

  test('with deletes on, the hub rule sees DeleteRoute too', () => {
    const rules = synthStack({ ...HUB, ...DELETES }).template.findResources('AWS::Events::Rule');
    expect(rules[HUB_RULE].Properties.EventPattern.detail.eventName).toContain('DeleteRoute');
  });

  test('role: the fixed name sync-routes-hub-<region>, with the region token when environment-agnostic', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      RoleName: { 'Fn::Join': ['', ['sync-routes-hub-', { Ref: 'AWS::Region' }]] },
    });
    const app = newApp(HUB);
    const regional = new SyncRoutesStack(app, 'SyncRoutes-eu-west-1', { env: { region: 'eu-west-1' } });
    Template.fromStack(regional).hasResourceProperties('AWS::IAM::Role', { RoleName: 'sync-routes-hub-eu-west-1' });
  });

  test('not a hub: the role name stays generated, and no bus, bus policy, hub rule or AssumeRole', () => {
    const single = synthStack().template;
    single.hasResourceProperties('AWS::IAM::Role', { RoleName: Match.absent() });
    single.resourceCountIs('AWS::Events::EventBus', 0);
    single.resourceCountIs('AWS::Events::EventBusPolicy', 0);
    expect(Object.keys(single.findResources('AWS::Events::Rule'))).toEqual([RULE, SWEEP_RULE]);
    const json = JSON.stringify(single.toJSON());
    // The role's only sts:AssumeRole is its trust policy's, for lambda.amazonaws.com.
    const assumes = allPolicyStatements(single).filter(({ statement }) => [statement.Action].flat().includes('sts:AssumeRole'));
    expect(assumes.map(({ resource }) => resource)).toEqual([`${ROLE} (AWS::IAM::Role)`]);
    expect(json).not.toContain('SYNC_MEMBER_');
    expect(json).not.toContain('SYNC_ACCOUNT_ID');
    expect(single.toJSON().Outputs.HubEventBusArn).toBeUndefined();
  });

  test('AssumeMemberRoles: sts:AssumeRole on the member role name in any account, and nothing else assumes', () => {
    const assumes = allPolicyStatements(template).filter(({ resource, statement }) =>
      resource.includes('AWS::IAM::Policy') && [statement.Action].flat().includes('sts:AssumeRole'));
    expect(assumes.map(({ statement }) => statement)).toEqual([{
      Sid: 'AssumeMemberRoles',
      Effect: 'Allow',
      Action: 'sts:AssumeRole',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::*:role/sync-routes-member']] },
    }]);
    const named = synthStack({ ...HUB_MINIMAL, memberRoleName: 'netops-sync' }).template;
    const resource = allPolicyStatements(named).find(({ statement }) => statement.Sid === 'AssumeMemberRoles')!.statement.Resource;
    expect(resource).toEqual({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::*:role/netops-sync']] });
    expect(functionEnvironment(named).SYNC_MEMBER_ROLE_NAME).toBe('netops-sync');
  });

  test('function: SYNC_ACCOUNT_ID is the stack\'s own account (the function refuses SYNC_MEMBER_ROLE_NAME without it)', () => {
    expect(functionEnvironment(template).SYNC_ACCOUNT_ID).toEqual({ Ref: 'AWS::AccountId' });
    // A stack with an explicit environment (-c regions=...) gets the deploying account too.
    const app = newApp(HUB);
    const regional = new SyncRoutesStack(app, 'SyncRoutes-eu-west-1', { env: { region: 'eu-west-1', account: '999999999999' } });
    expect(functionEnvironment(Template.fromStack(regional)).SYNC_ACCOUNT_ID).toEqual({ Ref: 'AWS::AccountId' });
  });

  test('function: the member role name, external id, accounts and regions, only those given', () => {
    expect(functionEnvironment(template)).toEqual(expect.objectContaining({
      SYNC_MEMBER_ROLE_NAME: 'sync-routes-member',
      SYNC_MEMBER_EXTERNAL_ID: 'sync-routes-example-id',
      SYNC_MEMBER_ACCOUNTS: '111122223333,444455556666',
      SYNC_MEMBER_REGIONS: 'eu-west-1,us-east-1',
    }));
    const minimal = synthStack(HUB_MINIMAL).template;
    expect(Object.keys(functionEnvironment(minimal)).filter((k) => k.startsWith('SYNC_MEMBER_')).sort())
      .toEqual(['SYNC_MEMBER_EXTERNAL_ID', 'SYNC_MEMBER_ROLE_NAME']);
  });

  test('organizationId without memberExternalId is refused: the member role\'s trust requires sts:ExternalId', () => {
    for (const context of [{ organizationId: 'o-a1b2c3d4e5' }, { organizationId: 'o-a1b2c3d4e5', memberExternalId: '' }]) {
      expect(() => synthStack(context)).toThrow(/organizationId needs memberExternalId: .*ExternalId parameter \(-c memberExternalId=\.\.\., 8 to 1224/);
    }
    // The member template's ExternalId parameter's length: 7 characters are refused, 8 accepted.
    expect(() => synthStack({ ...HUB_MINIMAL, memberExternalId: 'x'.repeat(7) })).toThrow(/memberExternalId: 'xxxxxxx' is not an external id the member template's ExternalId parameter accepts \(8 to 1224/);
    expect(functionEnvironment(synthStack({ ...HUB_MINIMAL, memberExternalId: 'x'.repeat(8) }).template).SYNC_MEMBER_EXTERNAL_ID).toBe('xxxxxxxx');
    expect(() => synthStack({ ...HUB_MINIMAL, memberExternalId: 'x'.repeat(1225) })).toThrow(/memberExternalId/);
  });

  test('a memberExternalId given as a token (a stack parameter) is not checked at synth', () => {
    const app = newApp();
    const stack = new Stack(app, 'Embedding');
    const externalId = new CfnParameter(stack, 'ExternalId', { type: 'String' }).valueAsString;
    new SyncRoutes(stack, 'SyncRoutes', { code: lambda.Code.fromAsset(PLACEHOLDER_ASSET), organizationId: 'o-a1b2c3d4e5', memberExternalId: externalId });
    expect(functionEnvironment(Template.fromStack(stack)).SYNC_MEMBER_EXTERNAL_ID).toEqual({ Ref: 'ExternalId' });
  });

  test('dashboard: routes written and tables failed per account, by a search', () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as any[];
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    expect(body).toContain('Work per account');
    for (const name of ['RoutesWritten', 'TablesFailed']) {
      expect(body).toContain(
        `SEARCH('{SyncRoutes,FunctionName,Account} MetricName=\\\\\\"${name}\\\\\\" FunctionName=\\\\\\"",{"Ref":"${FUNCTION}"},"\\\\\\"', 'Sum', 300)`);
    }
    expect(JSON.stringify(synthStack().template.toJSON())).not.toContain('SEARCH(');
  });

  test('bad organization values are refused, and member options need organizationId', () => {
    const refused: Array<[Record<string, string>, RegExp]> = [
      [{ organizationId: 'o-short' }, /organizationId: 'o-short' is not an AWS Organizations ID/],
      [{ organizationId: 'r-a1b2c3d4e5' }, /organizationId/],
      [{ ...HUB, memberRoleName: 'sync routes' }, /memberRoleName: 'sync routes' is not an IAM role name/],
      [{ ...HUB, memberRoleName: 'x'.repeat(65) }, /memberRoleName/],
      [{ ...HUB, memberExternalId: 'a' }, /memberExternalId: 'a' is not an external id/],
      [{ ...HUB, memberExternalId: 'id with spaces' }, /memberExternalId/],
      [{ ...HUB, memberAccounts: '111122223333,12345' }, /memberAccounts: '12345' is not a 12-digit AWS account ID/],
      [{ ...HUB, memberRegions: 'eu-west-1,mars' }, /memberRegions: 'mars' is not an AWS region name/],
    ];
    for (const [context, error] of refused) {
      expect(() => synthStack(context)).toThrow(error);
    }
    for (const option of ['memberRoleName', 'memberExternalId', 'memberAccounts', 'memberRegions']) {
      const value = { memberRoleName: 'r', memberExternalId: 'external', memberAccounts: '111122223333', memberRegions: 'eu-west-1' }[option]!;
      expect(() => synthStack({ [option]: value })).toThrow(new RegExp(`${option} needs organizationId`));
    }
    expect(() => synthStack({ memberRoleName: 'r', memberRegions: 'eu-west-1' })).toThrow(/memberRoleName, memberRegions need organizationId/);
  });

  test('the member role\'s wildcard account is acknowledged with a reason', () => {
    const app = newApp(HUB);
    const stack = new SyncRoutesStack(app, 'SyncRoutes', { stackName: 'SyncRoutes' });
    const acks = stack.node.findAll().flatMap((c) =>
      c.node.metadata.filter((m) => m.type === 'aws:cdk:acknowledged-rules').map((m) => m.data as Record<string, string>));
    const [reason] = acks.flatMap((a) => Object.entries(a))
      .filter(([id]) => id.endsWith('AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/sync-routes-member]'))
      .map(([, r]) => r);
    expect(reason).toMatch(/any account of the organization/);
    expect(reason).toMatch(/external id/);
  });
});

describe('cdk-nag AwsSolutions', () => {
  test.each([
    ['defaults', {}],
    ['every option', { alertEmail: 'netops@example.com', createTrail: 'true', vpcIds: 'vpc-0123456789abcdef0', architecture: 'arm64' }],
    ['deletes on (the ledger)', { ...DELETES, maxDeletes: '20' }],
    ['an organization hub', HUB],
    ['a hub with deletes and its own member role name', { ...HUB, ...DELETES, memberRoleName: 'netops-sync' }],
  ])('%s: no unacknowledged finding', (_name, context) => {
    const app = newApp(context);
    new SyncRoutesStackForNag(app);
    const { error, pluginReports } = nagCheck(app);
    expect(error).toBe('');
    expect(pluginReports).toEqual([]);
  });

  test('stacks with an explicit environment (-c regions=...) have no unacknowledged finding either', () => {
    // Their region (and with CDK_DEFAULT_ACCOUNT their account) is a literal, not a token: the
    // acknowledged ARNs must not change with it.
    const app = newApp({ regions: 'eu-west-1,us-east-1', vpcIds: 'vpc-0123456789abcdef0' });
    addStacks(app);
    new SyncRoutesStack(app, 'SyncRoutes-ap-southeast-2', { env: { region: 'ap-southeast-2', account: '111111111111' } });
    const { error, pluginReports } = nagCheck(app);
    expect(error).toBe('');
    expect(pluginReports).toEqual([]);
  });

  test('no finding with httpEndpoint on either', () => {
    const app = newApp({ httpEndpoint: 'true' });
    new SyncRoutesStack(app, 'SyncRoutes', { stackName: 'SyncRoutes' });
    const { error } = nagCheck(app);
    expect(error).toBe('');
  });

  test('every acknowledgement has a reason', () => {
    const app = newApp({ createTrail: 'true', alertEmail: 'netops@example.com' });
    const stack = new SyncRoutesStackForNag(app);
    const acks = stack.node.findAll().flatMap((c) =>
      c.node.metadata.filter((m) => m.type === 'aws:cdk:acknowledged-rules').map((m) => ({ path: c.node.path, data: m.data as Record<string, string> })));
    const ids = acks.flatMap((a) => Object.keys(a.data)).map((id) => id.replace(/^[A-Za-z]+::/, '')).sort();
    expect(ids).toEqual([
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:route-table/*]',
      'AwsSolutions-S1',
      'AwsSolutions-SQS3',
      'AwsSolutions-SQS3',
      'AwsSolutions-SQS3',
    ]);
    for (const ack of acks) {
      for (const reason of Object.values(ack.data)) {
        expect(reason.length).toBeGreaterThan(40);
      }
    }
  });

  test('the check is live: an unremediated bucket is reported', () => {
    const app = newApp();
    new s3.Bucket(new Stack(app, 'Bad'), 'Bucket');
    const { error, pluginReports } = nagCheck(app);
    expect(error).toMatch(/ValidationFailed/);
    expect(JSON.stringify(pluginReports)).toContain('AwsSolutions-S1');
  });
});

/**
 * The stage name in the ApiUrl output: the URL refers to the stage resource
 * (`https://<api>.execute-api.<region>.<suffix>/<Ref stage>/vpcs/...`), whose StageName it is.
 */
function apiUrlStageName(template: Template): string {
  const [, parts] = template.toJSON().Outputs.ApiUrl.Value['Fn::Join'] as [string, unknown[]];
  const i = parts.findIndex((p) => typeof p === 'string' && p.startsWith('/vpcs/{vpc-id}/route-tables/{route-table-id}'));
  expect(parts[i - 1]).toEqual({ Ref: expect.any(String) });
  const stage = template.toJSON().Resources[(parts[i - 1] as { Ref: string }).Ref];
  expect(stage.Type).toBe('AWS::ApiGateway::Stage');
  return stage.Properties.StageName;
}

/** The stack as bin/sync-routes.ts builds it, in an app that cdk-nag will check. */
class SyncRoutesStackForNag extends SyncRoutesStack {
  constructor(app: App) {
    super(app, 'SyncRoutes', { stackName: 'SyncRoutes' });
  }
}

import { Annotations, ArnFormat, Aws, CfnCondition, CfnElement, CfnResource, Duration, Fn, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as eventSources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import { Construct, IConstruct } from 'constructs';
import { syncRoutesCode } from './lambda-code';
import {
  DEFAULT_MEMBER_ROLE_NAME,
  EXTERNAL_ID_CHARACTERS,
  HUB_BUS_NAME,
  hubRoleName,
  IAM_ROLE_NAME_PATTERN,
  MEMBER_EXTERNAL_ID_MAX_LENGTH,
  MEMBER_EXTERNAL_ID_MIN_LENGTH,
  ORGANIZATION_ID_PATTERN,
} from './organization';

/** Route target kinds the function knows (`SYNC_TARGET_KINDS`). */
export const SYNC_TARGET_KINDS = [
  'network-interface',
  'transit-gateway',
  'nat-gateway',
  'vpc-peering-connection',
  'internet-gateway',
  'virtual-private-gateway',
  'vpc-endpoint',
  'odb-network',
  'egress-only-internet-gateway',
  'carrier-gateway',
  'local-gateway',
  'core-network',
] as const;
export type SyncTargetKind = (typeof SYNC_TARGET_KINDS)[number];

/** The EC2 API calls whose successful CloudTrail records trigger the function. */
export const TRIGGER_EVENT_NAMES = ['CreateRoute', 'ReplaceRoute', 'CreateRouteTable', 'ReplaceRouteTableAssociation'];

/** Namespace of the metrics the function writes in embedded metric format (dimension `FunctionName`). */
export const METRICS_NAMESPACE = 'SyncRoutes';

/** An AWS region name (`eu-west-1`, `us-gov-west-1`). */
export const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d$/;

/** What `SYNC_MAX_DELETES` accepts: the function refuses to start with anything else. */
const MAX_DELETES_RANGE = { min: 1, max: 100_000 };

/** Options of {@link SyncRoutes}. Every one has a default: `new SyncRoutes(this, 'SyncRoutes')` is a full deployment. */
export interface SyncRoutesProps {
  /**
   * The function's code: a directory holding the `bootstrap` executable.
   *
   * @default - `<repo>/target/lambda/sync-routes`, built with `cargo lambda build --release` when missing or stale (see `syncRoutesCode`)
   */
  readonly code?: lambda.Code;

  /**
   * CPU architecture of the function; the code must be built for it (`cargo lambda build --release --arm64`).
   *
   * @default lambda.Architecture.X86_64
   */
  readonly architecture?: lambda.Architecture;

  /**
   * Memory of the function in MB. The function is I/O bound; 128 MB is plenty.
   *
   * @default 128
   */
  readonly memorySize?: number;

  /**
   * Function timeout. The function retries throttled route writes until about 2 s before its
   * deadline, so this bounds the back-off, not the normal run time (well under a second).
   * The work queue's visibility timeout is six times this (AWS's guidance for a Lambda
   * consumer: room for retries when the function is throttled).
   *
   * @default Duration.seconds(60)
   */
  readonly timeout?: Duration;

  /**
   * Retention of the function's log group.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Level of the function's JSON logs; Lambda passes it as `AWS_LAMBDA_LOG_LEVEL`.
   *
   * @default lambda.ApplicationLogLevel.INFO
   */
  readonly logLevel?: lambda.ApplicationLogLevel;

  /**
   * Route target kinds to copy from the main route table (`SYNC_TARGET_KINDS`).
   *
   * @default - not set: the function's own default, `network-interface` only
   */
  readonly syncTargetKinds?: SyncTargetKind[];

  /**
   * E-mail address subscribed to the alert topic. May be a token (a stack parameter):
   * then the subscription is only created when the value is not empty.
   *
   * @default - no subscription; subscribe to the topic yourself
   */
  readonly alertEmail?: string;

  /**
   * Create a CloudTrail trail (multi-region, write management events, into a new encrypted
   * S3 bucket). EventBridge only receives `AWS API Call via CloudTrail` events when some trail
   * logs management events, so enable this only for accounts without one: a second trail
   * copy of management events is billed.
   *
   * @default false
   */
  readonly createTrail?: boolean;

  /**
   * Restrict `ec2:CreateRoute` / `ec2:ReplaceRoute` to route tables of these VPCs
   * (IDs such as `vpc-0123456789abcdef0`, of this account and region).
   *
   * @default - every VPC of this account and region
   */
  readonly vpcIds?: string[];

  /**
   * How long EventBridge keeps retrying to deliver an event to the work queue before it is
   * parked in the rule dead-letter queue, and how long Lambda keeps a direct asynchronous
   * invocation (`aws lambda invoke --invocation-type Event`) before it goes to the
   * failed-invocations queue.
   *
   * @default Duration.hours(6)
   */
  readonly maxEventAge?: Duration;

  /**
   * Retries of a direct asynchronous invocation that returned an error (0-2). Work from the
   * queue is retried by the queue instead: a message is received up to 5 times before it
   * moves to the work dead-letter queue.
   *
   * @default 2
   */
  readonly retryAttempts?: number;

  /**
   * Destinations the function may sync (`SYNC_DESTINATIONS`): CIDR blocks, which admit every
   * route inside them, and managed prefix list IDs (`pl-...`).
   *
   * @default - every destination
   */
  readonly destinations?: string[];

  /**
   * Copy deletions from the main route table to the custom tables
   * (`SYNC_PROPAGATE_DELETES`). Needs `destinations`: deletes always have an explicit scope.
   * Adds `DeleteRoute` to the rule and `ec2:DeleteRoute` to the role.
   *
   * @default false
   */
  readonly propagateDeletes?: boolean;

  /**
   * With `propagateDeletes`, the most routes one request deletes (`SYNC_MAX_DELETES`, 1 to
   * 100000). A plan with more deletes than that deletes none of them and reports
   * `delete-budget-exceeded`: a mistaken main-table move or an emptied main table would
   * otherwise strip every custom table of the VPC at once. A person who means it runs
   * `{"reconcile": true, "vpc-id": "vpc-...", "max-deletes": N}`.
   *
   * @default 10
   */
  readonly maxDeletes?: number;

  /**
   * When the sweep reconciles every VPC in scope, repairing whatever a lost event left
   * behind (CloudTrail delivers to EventBridge on a best-effort basis). `false`: no sweep.
   *
   * @default events.Schedule.rate(Duration.minutes(15))
   */
  readonly sweepSchedule?: events.Schedule | false;

  /**
   * Most invocations the work queue's event source mapping runs at once
   * (`ScalingConfig.MaximumConcurrency`, 2 to 1000, the range Lambda accepts). It caps how
   * many invocations share EC2's route-write bucket (50 burst, 5 per second per account and
   * region) without reserving any concurrency: more work waits in the queue instead of each
   * invocation getting a sliver of the bucket and timing out, and since nothing is reserved,
   * the stack deploys on a new account whose whole Lambda quota is 10 (see
   * `reservedConcurrency`). Two keep a long failover from holding up every other VPC's events;
   * two processes sharing the bucket measured within 1.2x its floor (BENCHMARKS.md, issue 13).
   *
   * @default 2
   */
  readonly maxConcurrency?: number;

  /**
   * How long the event source mapping gathers messages before it invokes the function
   * (`MaximumBatchingWindowInSeconds`, whole seconds, 0 to 300). With 0 (the default) a
   * batch is whatever is waiting, up to 10 messages, and an invocation starts as soon as a
   * consumer is free; the route events of one main table in a batch are still one request
   * (one read, one plan, one notice), and while both consumers work through a failover the
   * events behind them gather into batches of 10. Measured (BENCHMARKS.md, issue 17), 26
   * route events at once: 0 s: 14 reads, 6 notices, the last route as soon as with one
   * invocation per event; 1 s (batches of up to 100): 6 reads, 2 notices, 0.9 s later; and
   * with a window every lone event (1.1 s instead of 0.17 s) and every continuation of a long
   * failover waits it out (issue 13's scaled failover: 1.04x the bucket's floor at 0 s,
   * 1.13x at 1 s).
   *
   * @default Duration.seconds(0)
   */
  readonly batchingWindow?: Duration;

  /**
   * Reserved concurrency of the function (`ReservedConcurrentExecutions`). Not needed to
   * limit the queue's consumers (`maxConcurrency` does that); it would also cap direct and
   * HTTP invocations. Setting it on a new account fails the deploy: Lambda keeps at least 10
   * (or 100) executions of the account unreserved, and a new account's whole quota is often
   * 10 ("decreases account's UnreservedConcurrentExecution below its minimum value of [10]").
   * Keep it at least `maxConcurrency`, or the queue's invocations are throttled.
   *
   * @default - unset: no concurrency reserved
   */
  readonly reservedConcurrency?: number;

  /**
   * Alarm when the p99 of `EventLag` (CloudTrail's eventTime to the end of the sync) stays
   * above this for two 5-minute periods. CloudTrail delivers to EventBridge on a best-effort
   * basis, usually within seconds (a p99 near 90 s was reported in 2017), so one slow
   * delivery is normal; a minute at the 99th percentile, sustained, means events are late
   * or the function is throttled, four times the 15 s a failover is expected to take.
   *
   * @default Duration.seconds(60)
   */
  readonly lagAlarmThreshold?: Duration;

  /**
   * Also serve the original AWS Sync Routes HTTP API: an API Gateway REST API with
   * `PATCH /vpcs/{vpc-id}/route-tables/{route-table-id}`, body
   * `{"destination-cidr-block": "...", "dry-run": false}`, an API key in `X-API-Key`, so that
   * the original's clients work unchanged.
   *
   * @default false
   */
  readonly httpEndpoint?: boolean;

  /**
   * Stage name of the HTTP API (the first path segment of its URL). The original tool's own
   * client script calls the stage `v1`.
   *
   * @default 'v1'
   */
  readonly httpStageName?: string;

  /**
   * Burst of the HTTP API's usage plan (requests). The original's default.
   *
   * @default 10
   */
  readonly httpBurstLimit?: number;

  /**
   * Steady rate of the HTTP API's usage plan (requests per second). The original's default.
   *
   * @default 1
   */
  readonly httpRateLimit?: number;

  /**
   * Make this deployment the hub of an AWS organization (`o-...`, as
   * `aws organizations describe-organization` prints it). Everything of a single-account
   * deployment stays; in addition an event bus named `sync-routes` admits the organization's
   * accounts (the member template's rules forward their route changes to it), a rule on it
   * sends them to the work queue, and the function's role gets the fixed name
   * `sync-routes-hub-<region>` and may assume the member role of any account.
   *
   * @default - a single-account deployment
   */
  readonly organizationId?: string;

  /**
   * Name of the role the hub assumes in each member account (`SYNC_MEMBER_ROLE_NAME`); the
   * member template's `MemberRoleName`. Needs `organizationId`.
   *
   * @default 'sync-routes-member'
   */
  readonly memberRoleName?: string;

  /**
   * External id the hub passes when it assumes a member role (`SYNC_MEMBER_EXTERNAL_ID`): the
   * same value as the member StackSet's `ExternalId` parameter, and like it 8 to 1224 of the
   * characters STS accepts. Required with `organizationId`: the member role's trust policy
   * requires `sts:ExternalId`, so a hub without one could never assume it. Needs
   * `organizationId`.
   *
   * @default - none: only valid without `organizationId`
   */
  readonly memberExternalId?: string;

  /**
   * Member accounts the sweep covers (`SYNC_MEMBER_ACCOUNTS`, 12-digit IDs), each in each of
   * `memberRegions`; when given, also the only accounts the hub works in: a route change
   * forwarded by an account not listed is refused (the hub does not assume its role there),
   * fails, and ends in the work dead-letter queue. Needs `organizationId`.
   *
   * @default - the sweep covers this account only; forwarded changes of any account of the organization are synced
   */
  readonly memberAccounts?: string[];

  /**
   * Regions of the member accounts the sweep covers (`SYNC_MEMBER_REGIONS`). Needs
   * `organizationId`.
   *
   * @default - the function's own region
   */
  readonly memberRegions?: string[];
}

/**
 * The sync-routes deployment: the Rust function, the EventBridge rule on successful
 * `CreateRoute`/`ReplaceRoute` CloudTrail records and the sweep schedule, both sending to a
 * work queue that the function consumes through an event source mapping (at most
 * `maxConcurrency` invocations at once, nothing reserved), an encrypted alert topic with
 * alarms, queues that keep events that still fail, and optionally the CloudTrail trail.
 */
export class SyncRoutes extends Construct {
  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly rule: events.Rule;
  public readonly topic: sns.Topic;
  public readonly topicKey: kms.Key;
  /**
   * The engine's queue: the rules' events and the function's own continuations. Its body is
   * the EventBridge event JSON (or the function's continuation); the function consumes it
   * through an event source mapping.
   */
  public readonly workQueue: sqs.Queue;
  /** Work-queue messages that failed 5 receives (the work queue's dead-letter queue). */
  public readonly workDeadLetterQueue: sqs.Queue;
  /** The event source mapping of the work queue to the function. */
  public readonly workEventSource: eventSources.SqsEventSource;
  /** Direct asynchronous invocations that failed every retry (Lambda on-failure destination). */
  public readonly failedInvocationsQueue: sqs.Queue;
  /** Events EventBridge could not deliver to the work queue (rule target dead-letter queue). */
  public readonly ruleDeadLetterQueue: sqs.Queue;
  public readonly alarms: cloudwatch.Alarm[];
  public readonly trail?: cloudtrail.Trail;
  /** The scheduled sweep, unless `sweepSchedule` is `false`. */
  public readonly sweepRule?: events.Rule;
  public readonly dashboard: cloudwatch.Dashboard;
  /** The original tool's HTTP API, with `httpEndpoint`. */
  public readonly api?: apigateway.RestApi;
  /** The HTTP API's key, with `httpEndpoint`. */
  public readonly apiKey?: apigateway.IApiKey;
  /**
   * With `propagateDeletes`: the routes the function wrote itself (partition key
   * `RouteTableId`, sort key `Destination`), so that it deletes only those.
   */
  public readonly ledger?: dynamodb.Table;
  /** With `organizationId`: the bus `sync-routes`, to which member accounts forward their route changes. */
  public readonly hubBus?: events.EventBus;
  /** With `organizationId`: the rule on {@link hubBus} that sends those changes to the work queue. */
  public readonly hubRule?: events.Rule;

  constructor(scope: Construct, id: string, props: SyncRoutesProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    const architecture = props.architecture ?? lambda.Architecture.X86_64;
    const maxEventAge = props.maxEventAge ?? Duration.hours(6);
    const timeout = props.timeout ?? Duration.seconds(60);
    const maxConcurrency = props.maxConcurrency ?? 2;
    validateProps(props);

    // --- Alerts: an SNS topic encrypted with a customer managed key -----------------------
    // A customer managed key (not alias/aws/sns) because CloudWatch alarms can only publish
    // to an encrypted topic whose key policy lets cloudwatch.amazonaws.com use the key.
    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the sync-routes alert topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
      policy: topicKeyPolicy(),
    });
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'sync-routes alerts',
      masterKey: this.topicKey,
      enforceSSL: true,
    });
    // enforceSSL gives the topic a policy, which replaces SNS's default one; alarms of this
    // account must then be allowed explicitly.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsOfThisAccount',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          ArnLike: { 'aws:SourceArn': stack.formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }) },
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
        },
      }),
    );
    this.subscribeEmail(props.alertEmail);

    // --- Queues that keep events that still fail ------------------------------------------
    this.failedInvocationsQueue = failureQueue(this, 'FailedInvocationsQueue');
    this.ruleDeadLetterQueue = failureQueue(this, 'RuleDeadLetterQueue');
    this.workDeadLetterQueue = failureQueue(this, 'WorkDeadLetterQueue');

    // --- The work queue: what the rules send and the function consumes -------------------
    this.workQueue = new sqs.Queue(this, 'WorkQueue', {
      // SSE-SQS: EventBridge cannot write to a queue encrypted with the AWS managed KMS key.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS's guidance for a Lambda consumer: six times the function timeout, so that Lambda
      // can retry a throttled batch before its messages become visible again.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
      // Shorter than the dead-letter queue's 14 days: a standard queue's message keeps its
      // first enqueue time when it moves, so the DLQ must keep it longer than this queue.
      retentionPeriod: Duration.days(4),
      // A message whose invocation failed 5 times (an error, or the messageId reported in
      // batchItemFailures) is kept for a person instead of being retried forever.
      deadLetterQueue: { queue: this.workDeadLetterQueue, maxReceiveCount: 5 },
    });

    // --- The function -------------------------------------------------------------------
    const logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An explicit role, so that CDK adds no AWSLambdaBasicExecutionRole managed policy
    // (it allows logs:CreateLogGroup on every group) and every statement is visible here.
    const hub = props.organizationId !== undefined;
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'sync-routes function: read route tables, write routes to custom route tables, publish alerts',
      // A hub's role has a known name, so that each member role can trust exactly it without
      // the hub's outputs (one hub per region; IAM names are global to the account).
      roleName: hub ? hubRoleName(stack.region) : undefined,
    });
    const propagateDeletes = props.propagateDeletes ?? false;
    // Only routes to Gateway Load Balancer endpoints need the endpoints' types (an S3 or
    // DynamoDB gateway endpoint's route reads the same and is never copied).
    const readsEndpoints = props.syncTargetKinds?.includes('vpc-endpoint') ?? false;
    this.grantFunctionPermissions(logGroup, { propagateDeletes, readsEndpoints, vpcIds: props.vpcIds });
    // An invocation that meets its deadline puts the rest of its work back on its own queue
    // (a continuation); nothing else is sent, so SendMessage on this queue only.
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ContinueOnQueue',
        actions: ['sqs:SendMessage'],
        resources: [this.workQueue.queueArn],
      }),
    );
    if (propagateDeletes) {
      this.ledger = this.createLedger();
    }
    const memberRoleName = props.memberRoleName ?? DEFAULT_MEMBER_ROLE_NAME;
    if (hub) {
      this.grantAssumeMemberRoles(memberRoleName);
    }

    const environment: Record<string, string> = {
      SNS_TOPIC_ARN: this.topic.topicArn,
      SYNC_QUEUE_URL: this.workQueue.queueUrl,
    };
    if (props.syncTargetKinds) {
      environment.SYNC_TARGET_KINDS = props.syncTargetKinds.join(',');
    }
    // The VPC list lives in the function too, not only in IAM: an event from another VPC is
    // then answered `ignored` after one read, instead of failing on UnauthorizedOperation.
    if (props.vpcIds?.length) {
      environment.SYNC_VPC_IDS = props.vpcIds.join(',');
    }
    if (props.destinations?.length) {
      environment.SYNC_DESTINATIONS = props.destinations.join(',');
    }
    if (propagateDeletes && this.ledger) {
      environment.SYNC_PROPAGATE_DELETES = 'true';
      environment.SYNC_LEDGER_TABLE = this.ledger.tableName;
      environment.SYNC_MAX_DELETES = String(props.maxDeletes ?? 10);
    }
    if (hub) {
      // The hub's own account: the function works there with its own role, and assumes the
      // member role in any other (it refuses SYNC_MEMBER_ROLE_NAME without it).
      environment.SYNC_ACCOUNT_ID = Aws.ACCOUNT_ID;
      environment.SYNC_MEMBER_ROLE_NAME = memberRoleName;
      if (props.memberExternalId !== undefined) {
        environment.SYNC_MEMBER_EXTERNAL_ID = props.memberExternalId;
      }
      if (props.memberAccounts?.length) {
        environment.SYNC_MEMBER_ACCOUNTS = props.memberAccounts.join(',');
      }
      if (props.memberRegions?.length) {
        environment.SYNC_MEMBER_REGIONS = props.memberRegions.join(',');
      }
    }
    this.function = new lambda.Function(this, 'Function', {
      description: 'Copies routes written to a VPC main route table to its custom route tables',
      runtime: lambda.Runtime.PROVIDED_AL2023,
      handler: 'bootstrap',
      code: props.code ?? syncRoutesCode({ architecture }),
      architecture,
      memorySize: props.memorySize ?? 128,
      timeout,
      role: this.role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: props.logLevel ?? lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      environment,
      // Direct asynchronous invocations (`aws lambda invoke --invocation-type Event`; the
      // rules send to the queue): an error (a failed route write) is retried, and an event
      // that still fails lands in the queue instead of being lost.
      onFailure: sendOnlyQueueDestination(this.failedInvocationsQueue),
      maxEventAge,
      retryAttempts: props.retryAttempts ?? 2,
      // Unset by default: reserving any concurrency fails the deploy on a new account whose
      // quota is 10. The event source mapping's maxConcurrency limits the consumers instead.
      reservedConcurrentExecutions: props.reservedConcurrency,
      // The function puts work it could not finish before its deadline back on its own queue
      // (a continuation): a loop by design, bounded by the function's own hop count, which
      // Lambda's recursive loop detection would otherwise stop after 16 hops.
      recursiveLoop: lambda.RecursiveLoop.ALLOW,
    });

    // --- The engine: the work queue's event source mapping ---------------------------------
    // Up to 10 messages a batch, or 100 with a batching window (SQS needs one for more than
    // 10); the function coalesces a batch's route events per main table. A
    // message the function reports in batchItemFailures is received again after
    // the visibility timeout, the others are deleted. SqsEventSource grants the role
    // sqs:ReceiveMessage, DeleteMessage, ChangeMessageVisibility, GetQueueAttributes and
    // GetQueueUrl on this queue, by name.
    const batchingWindow = props.batchingWindow ?? Duration.seconds(0);
    this.workEventSource = new eventSources.SqsEventSource(this.workQueue, {
      batchSize: batchingWindow.toSeconds() > 0 ? 100 : 10,
      maxBatchingWindow: batchingWindow,
      maxConcurrency,
      reportBatchItemFailures: true,
    });
    this.function.addEventSource(this.workEventSource);
    if (props.reservedConcurrency !== undefined && props.reservedConcurrency < maxConcurrency) {
      Annotations.of(this).addWarningV2(
        'sync-routes:reservedBelowMaxConcurrency',
        `reservedConcurrency ${props.reservedConcurrency} is below maxConcurrency ${maxConcurrency}: ` +
          'the queue\'s invocations beyond it are throttled, and each throttled batch counts toward the 5 receives ' +
          'that move its messages to the work dead-letter queue',
      );
    }

    // CDK makes the function depend on the role and its policy; the role is already implied by
    // the Fn::GetAtt of its ARN, and cfn-lint flags the duplicate (W3005). Keep only the policy.
    const defaultPolicy = this.role.node.tryFindChild('DefaultPolicy')?.node.defaultChild as CfnResource;
    (this.function.node.defaultChild as CfnResource).addOverride('DependsOn', [stack.getLogicalId(defaultPolicy as CfnElement)]);

    // --- The trigger ----------------------------------------------------------------------
    this.rule = new events.Rule(this, 'Rule', {
      description: 'Successful EC2 route and route table calls (CloudTrail), except the sync-routes function\'s own',
      eventPattern: triggerEventPattern(this.role, propagateDeletes),
      targets: [this.ruleTarget(maxEventAge)],
    });
    if (props.sweepSchedule !== false) {
      this.sweepRule = new events.Rule(this, 'SweepRule', {
        description: 'sync-routes sweep: reconcile every VPC in scope (repairs what a lost event left behind)',
        schedule: props.sweepSchedule ?? events.Schedule.rate(Duration.minutes(15)),
        targets: [this.ruleTarget(maxEventAge)],
      });
    }
    if (props.organizationId !== undefined) {
      [this.hubBus, this.hubRule] = this.createHubBus(props.organizationId, memberRoleName, propagateDeletes, maxEventAge);
    }

    // --- Alarms -------------------------------------------------------------------------
    const alarmAction = new cwActions.SnsAction(this.topic);
    this.alarms = [
      new cloudwatch.Alarm(this, 'ErrorsAlarm', {
        alarmDescription: 'sync-routes returned an error (a route write failed); see its logs',
        metric: this.function.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      queueAlarm(this, 'FailedInvocationsAlarm', this.failedInvocationsQueue,
        'A direct asynchronous invocation of sync-routes failed after all retries; the event is kept in the failed-invocations queue'),
      queueAlarm(this, 'RuleDeadLetterAlarm', this.ruleDeadLetterQueue,
        'EventBridge could not deliver a route change to the sync-routes work queue; the event is kept in the rule dead-letter queue'),
      queueAlarm(this, 'WorkDeadLetterAlarm', this.workDeadLetterQueue,
        'sync-routes failed a work-queue message 5 times; it is kept in the work dead-letter queue (see the function\'s logs)'),
      this.rejectedEventsAlarm(logGroup),
      new cloudwatch.Alarm(this, 'LagAlarm', {
        alarmDescription:
          'sync-routes: the 99th percentile of the time from a route change (CloudTrail eventTime) to the end of its ' +
          'sync stayed above the threshold; CloudTrail delivery is late or the function is throttled (see the dashboard)',
        metric: this.metric('EventLag', cloudwatch.Stats.percentile(99)),
        threshold: (props.lagAlarmThreshold ?? Duration.seconds(60)).toMilliseconds(),
        evaluationPeriods: 2,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    this.alarms.forEach((alarm) => alarm.addAlarmAction(alarmAction));
    this.dashboard = this.createDashboard();

    // --- The original tool's HTTP API, on request ------------------------------------------
    if (props.httpEndpoint) {
      [this.api, this.apiKey] = this.createHttpApi(props);
    }

    // --- CloudTrail, for accounts without a trail ----------------------------------------
    if (props.createTrail) {
      this.trail = this.createTrail();
    }
  }

  /**
   * The original AWS Sync Routes API: the same resource path, method, body and API key, so its
   * clients work unchanged. A request model rejects a body without `destination-cidr-block`
   * or with a non-boolean `dry-run` before the function runs; a usage plan throttles it.
   */
  private createHttpApi(props: SyncRoutesProps): [apigateway.RestApi, apigateway.IApiKey] {
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const api = new apigateway.RestApi(this, 'Api', {
      description: 'sync-routes: the original AWS Sync Routes API (PATCH /vpcs/{vpc-id}/route-tables/{route-table-id})',
      endpointTypes: [apigateway.EndpointType.REGIONAL],
      // Execution logs need an account-wide API Gateway role; access logs need none.
      cloudWatchRole: false,
      deployOptions: {
        stageName: props.httpStageName ?? 'v1',
        accessLogDestination: new apigateway.LogGroupLogDestination(accessLogs),
        accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields(),
        metricsEnabled: true,
      },
    });
    const model = api.addModel('SyncRequest', {
      contentType: 'application/json',
      modelName: 'SyncRequest',
      schema: {
        schema: apigateway.JsonSchemaVersion.DRAFT4,
        type: apigateway.JsonSchemaType.OBJECT,
        required: ['destination-cidr-block'],
        properties: {
          'destination-cidr-block': { type: apigateway.JsonSchemaType.STRING },
          'dry-run': { type: apigateway.JsonSchemaType.BOOLEAN },
        },
        additionalProperties: false,
      },
    });
    const validator = api.addRequestValidator('BodyAndPath', {
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const table = api.root
      .addResource('vpcs')
      .addResource('{vpc-id}')
      .addResource('route-tables')
      .addResource('{route-table-id}');
    // The proxy integration's permission is scoped to this method and path of this stage.
    table.addMethod('PATCH', new apigateway.LambdaIntegration(this.function, { proxy: true, allowTestInvoke: false }), {
      apiKeyRequired: true,
      requestModels: { 'application/json': model },
      requestValidator: validator,
      requestParameters: { 'method.request.path.vpc-id': true, 'method.request.path.route-table-id': true },
    });
    const key = api.addApiKey('ApiKey', { description: 'sync-routes HTTP API key (X-API-Key)' });
    const plan = api.addUsagePlan('UsagePlan', {
      description: 'sync-routes HTTP API: the original tool\'s throttling',
      throttle: { burstLimit: props.httpBurstLimit ?? 10, rateLimit: props.httpRateLimit ?? 1 },
      apiStages: [{ api, stage: api.deploymentStage }],
    });
    plan.addApiKey(key);

    const ack = Validations.of(api);
    ack.acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'The original AWS Sync Routes API authenticates with an API key (X-API-Key), which its clients send; an IAM or ' +
        'Cognito authorizer would break them. The key is required on the only method, and a usage plan throttles it.',
    });
    ack.acknowledge({
      id: 'AwsSolutions-COG4',
      reason: 'No Cognito user pool: the API is for scripts and monitors that hold the API key (see AwsSolutions-APIG4).',
    });
    ack.acknowledge({
      id: 'AwsSolutions-APIG3',
      reason:
        'One method, an API key and a usage plan of 10 burst / 1 per second by default; a WAF web ACL (billed) can be ' +
        'associated with the stage by the account if its policy asks for one.',
    });
    ack.acknowledge({
      id: 'AwsSolutions-APIG6',
      reason:
        'Access logs go to their own log group; execution logs would need the account-wide API Gateway CloudWatch ' +
        'role, which this stack does not change for the whole account.',
    });
    return [api, key];
  }

  /**
   * The ledger: one item per route the function wrote (`RouteTableId`, `Destination`), which
   * it checks before it deletes a route, so that it deletes only its own.
   */
  private createLedger(): dynamodb.Table {
    const ledger = new dynamodb.Table(this, 'Ledger', {
      partitionKey: { name: 'RouteTableId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'Destination', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Kept on `cdk destroy` and on replacement: it is the only record of which routes
      // sync-routes owns. Lost, every route the function wrote would look like someone
      // else's, and a deletion in the main table would never reach the custom tables again.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'RecordOwnRoutes',
        // The function's only two calls: BatchWriteItem records the routes it writes and
        // forgets those it deletes, BatchGetItem checks that a route to delete is its own.
        // No Query or Scan, and no index.
        actions: ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'],
        resources: [ledger.tableArn],
      }),
    );
    return ledger;
  }

  /**
   * The hub may assume the member role of any account: accounts join the organization at any
   * time, so they cannot be listed here. The member role's trust policy (this role's ARN and
   * the external id) decides which hub gets in.
   */
  private grantAssumeMemberRoles(memberRoleName: string): void {
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'AssumeMemberRoles',
        actions: ['sts:AssumeRole'],
        resources: [`arn:${Aws.PARTITION}:iam::*:role/${memberRoleName}`],
      }),
    );
    Validations.of(this.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/${memberRoleName}]`,
      reason:
        'The member role of any account of the organization: accounts join at any time and cannot be listed in advance. ' +
        'Only that role name is allowed, and the member role\'s trust policy (this role, and the external id) is what ' +
        'admits the hub.',
    });
  }

  /**
   * The hub's bus: member accounts' rules forward their route changes here (through a role of
   * theirs), keeping each event's own `account` and `region`; a rule with the same pattern as
   * the default bus's sends them to the work queue.
   */
  private createHubBus(
    organizationId: string,
    memberRoleName: string,
    propagateDeletes: boolean,
    maxEventAge: Duration,
  ): [events.EventBus, events.Rule] {
    const bus = new events.EventBus(this, 'HubBus', {
      eventBusName: HUB_BUS_NAME,
      description: 'sync-routes hub: route changes forwarded by the accounts of the organization',
    });
    // Any principal of an account of the organization: a member's forwarding rule puts events
    // as its own EventBridge role. Naming accounts instead would need this stack updated for
    // each account that joins.
    bus.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OrganizationForwardsRouteChanges',
        principals: [new iam.StarPrincipal()],
        actions: ['events:PutEvents'],
        resources: [bus.eventBusArn],
        conditions: { StringEquals: { 'aws:PrincipalOrgID': organizationId } },
      }),
    );
    // The hub writes in a member account through the member role, and the member's rule
    // already leaves those calls out. Belt and braces: left out here too, the hub's writes
    // cannot come back even from a member stack of an older version or another rule that
    // forwards to this bus. (Each would be one extra sync with nothing to do, not a loop.)
    const memberSessions = `arn:${Aws.PARTITION}:sts::*:assumed-role/${memberRoleName}/*`;
    const rule = new events.Rule(this, 'HubRule', {
      eventBus: bus,
      description: 'Route and route table calls forwarded by member accounts, except sync-routes\' own',
      eventPattern: triggerEventPattern(this.role, propagateDeletes, [memberSessions]),
      targets: [this.ruleTarget(maxEventAge)],
    });
    return [bus, rule];
  }

  /**
   * The work queue as a rule's target: the message body is the whole event. Retries cover a
   * throttled or failed SendMessage; what is left goes to the rule dead-letter queue. The
   * target adds a queue policy statement for events.amazonaws.com with aws:SourceArn of
   * this rule, so only the rules of this construct may send.
   */
  private ruleTarget(maxEventAge: Duration): targets.SqsQueue {
    return new targets.SqsQueue(this.workQueue, {
      retryAttempts: 8,
      maxEventAge,
      deadLetterQueue: this.ruleDeadLetterQueue,
    });
  }

  /** One of the function's own metrics (embedded metric format, dimension FunctionName). */
  public metric(name: string, statistic: string): cloudwatch.Metric {
    // No unit: a metric's unit filters its data, and EventLag is in milliseconds anyway.
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: name,
      dimensionsMap: { FunctionName: this.function.functionName },
      statistic,
      period: Duration.minutes(5),
    });
  }

  private createDashboard(): cloudwatch.Dashboard {
    const fiveMinutes = { period: Duration.minutes(5) };
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(1),
    });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Lag: route change (CloudTrail eventTime) to sync done',
        left: [
          this.metric('EventLag', cloudwatch.Stats.percentile(50)).with({ label: 'p50' }),
          this.metric('EventLag', cloudwatch.Stats.percentile(99)).with({ label: 'p99' }),
        ],
        leftYAxis: { label: 'ms', showUnits: false },
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Routes written, tables failed, throttled calls, tables continued on the queue',
        left: [
          this.metric('RoutesWritten', cloudwatch.Stats.SUM).with({ label: 'routes written' }),
          this.metric('TablesFailed', cloudwatch.Stats.SUM).with({ label: 'tables failed' }),
          this.metric('Throttled', cloudwatch.Stats.SUM).with({ label: 'throttled EC2 calls' }),
          this.metric('TablesDeferred', cloudwatch.Stats.SUM).with({ label: 'continued on the queue' }),
        ],
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Invocations and errors',
        left: [
          this.function.metricInvocations({ ...fiveMinutes, statistic: cloudwatch.Stats.SUM }),
          this.function.metricErrors({ ...fiveMinutes, statistic: cloudwatch.Stats.SUM }),
          this.function.metricThrottles({ ...fiveMinutes, statistic: cloudwatch.Stats.SUM }),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Work queue: messages waiting, age of the oldest',
        left: [
          this.workQueue
            .metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, statistic: cloudwatch.Stats.MAXIMUM })
            .with({ label: 'messages waiting' }),
        ],
        right: [
          this.workQueue
            .metricApproximateAgeOfOldestMessage({ ...fiveMinutes, statistic: cloudwatch.Stats.MAXIMUM })
            .with({ label: 'oldest message (s)' }),
        ],
        rightYAxis: { label: 's', showUnits: false },
        width: 12,
      }),
    );
    const lastRow: cloudwatch.IWidget[] = [
      new cloudwatch.GraphWidget({
        title: 'Events kept in the failure queues',
        left: [
          this.workDeadLetterQueue
            .metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, statistic: cloudwatch.Stats.MAXIMUM })
            .with({ label: 'work dead letters' }),
          this.failedInvocationsQueue
            .metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, statistic: cloudwatch.Stats.MAXIMUM })
            .with({ label: 'failed invocations' }),
          this.ruleDeadLetterQueue
            .metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, statistic: cloudwatch.Stats.MAXIMUM })
            .with({ label: 'rule dead letters' }),
        ],
        width: 12,
      }),
    ];
    if (this.ledger) {
      lastRow.push(
        new cloudwatch.GraphWidget({
          title: 'Deletes refused by the budget, ledger write failures',
          left: [
            this.metric('DeleteBudgetExceeded', cloudwatch.Stats.SUM).with({ label: 'plans over the delete budget' }),
            this.metric('LedgerWriteFailures', cloudwatch.Stats.SUM).with({ label: 'ledger write failures' }),
          ],
          width: 12,
        }),
      );
    }
    dashboard.addWidgets(...lastRow);
    if (this.hubBus) {
      dashboard.addWidgets(
        new cloudwatch.GraphWidget({
          title: 'Work per account: routes written, tables failed',
          left: [this.perAccount('RoutesWritten', 'routes written')],
          right: [this.perAccount('TablesFailed', 'tables failed')],
          width: 24,
        }),
      );
    }
    return dashboard;
  }

  /**
   * The sums of one of the function's metrics per account: a hub writes them with the
   * dimensions FunctionName and Account as well, one time series per account it worked in.
   * A search, since the accounts are not known in advance.
   */
  private perAccount(name: string, label: string): cloudwatch.MathExpression {
    const fiveMinutes = Duration.minutes(5);
    return new cloudwatch.MathExpression({
      expression:
        `SEARCH('{${METRICS_NAMESPACE},FunctionName,Account} MetricName="${name}" ` +
        `FunctionName="${this.function.functionName}"', 'Sum', ${fiveMinutes.toSeconds()})`,
      label: `${label}, account \${PROP('Dim.Account')}`,
      period: fiveMinutes,
    });
  }

  /**
   * A payload the function cannot understand is answered with a `rejected` report, not an
   * error (retrying the same bytes cannot help), so it never reaches the failure queue. The
   * function logs it as `"decision": "rejected"`; this alarm makes sure someone sees it.
   */
  private rejectedEventsAlarm(logGroup: logs.LogGroup): cloudwatch.Alarm {
    const filter = new logs.MetricFilter(this, 'RejectedEvents', {
      logGroup,
      filterPattern: logs.FilterPattern.stringValue('$.decision', '=', 'rejected'),
      metricNamespace: 'SyncRoutes',
      metricName: 'RejectedEvents',
      metricValue: '1',
    });
    return new cloudwatch.Alarm(this, 'RejectedEventsAlarm', {
      alarmDescription: 'sync-routes received a payload it could not understand; see its logs ("decision": "rejected")',
      metric: filter.metric({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  private subscribeEmail(alertEmail: string | undefined): void {
    if (alertEmail === undefined) {
      return;
    }
    const subscription = this.topic.addSubscription(new subscriptions.EmailSubscription(alertEmail));
    if (Token.isUnresolved(alertEmail)) {
      // A stack parameter: subscribe only when it was given (an empty default means "none").
      const given = new CfnCondition(this, 'AlertEmailGiven', {
        expression: Fn.conditionNot(Fn.conditionEquals(alertEmail, '')),
      });
      (subscription.node.defaultChild as sns.CfnSubscription).cfnOptions.condition = given;
    }
  }

  private grantFunctionPermissions(logGroup: logs.LogGroup, routes: RoutePermissionsOptions): void {
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    routePermissions(routes).forEach((statement) => this.role.addToPolicy(statement));
    acknowledgeRoutePermissions(this.role, routes);
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'PublishAlerts',
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
      }),
    );
    // Publishing to an encrypted topic needs the key. Not topic.grantPublish(): it grants
    // kms:GenerateDataKey*, and this stack has no wildcard action anywhere.
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'EncryptAlerts',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [this.topicKey.keyArn],
      }),
    );
  }

  private createTrail(): cloudtrail.Trail {
    const bucket = new s3.Bucket(this, 'TrailBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      versioned: true,
      // Audit logs outlive the stack: `cdk destroy` leaves the bucket.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'The bucket only receives CloudTrail log files written by the CloudTrail service; server access logs would need ' +
        'another bucket (itself unlogged) for no gain on this single-writer bucket.',
    });
    return new cloudtrail.Trail(this, 'Trail', {
      bucket,
      isMultiRegionTrail: true,
      includeGlobalServiceEvents: true,
      enableFileValidation: true,
      // The rule needs write calls only; read calls are most of the volume.
      managementEvents: cloudtrail.ReadWriteType.WRITE_ONLY,
    });
  }
}

/** Options of {@link routePermissions}: the function's settings that change its EC2 permissions. */
export interface RoutePermissionsOptions {
  /** `ec2:DeleteRoute` too (`propagateDeletes`); without it the role cannot delete a route at all. */
  readonly propagateDeletes: boolean;
  /** `ec2:DescribeVpcEndpoints` too (`vpc-endpoint` in `syncTargetKinds`). */
  readonly readsEndpoints: boolean;
  /**
   * Route tables of the account in every region rather than the stack's region: a member
   * role, one role (IAM names are global) through which the hub syncs each region of the account.
   *
   * @default false
   */
  readonly everyRegion?: boolean;
  /**
   * Write routes only in these VPCs (IDs, of the stack's account and region), with the
   * `ec2:Vpc` condition key.
   *
   * @default - every VPC
   */
  readonly vpcIds?: string[];
}

/**
 * The EC2 permissions of sync-routes, for the hub's (or a single account's) function role and
 * for a member role alike: `ReadRouteTables` on `*` and `WriteRoutes` on the account's route
 * tables. Give their role {@link acknowledgeRoutePermissions} too.
 */
export function routePermissions(options: RoutePermissionsOptions): iam.PolicyStatement[] {
  // Tokens, not stack.formatArn: with -c regions=... the stack's region (and account) are
  // literals, which would change the ARN that the acknowledgement names.
  const arnPrefix = `arn:${Aws.PARTITION}:ec2:${options.everyRegion ? '*' : Aws.REGION}:${Aws.ACCOUNT_ID}`;
  const vpcIds = options.vpcIds ?? [];
  return [
    new iam.PolicyStatement({
      sid: 'ReadRouteTables',
      // Describe* calls support no resource-level permissions.
      actions: ['ec2:DescribeRouteTables', ...(options.readsEndpoints ? ['ec2:DescribeVpcEndpoints'] : [])],
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      sid: 'WriteRoutes',
      actions: ['ec2:CreateRoute', 'ec2:ReplaceRoute', ...(options.propagateDeletes ? ['ec2:DeleteRoute'] : [])],
      resources: [`${arnPrefix}:route-table/*`],
      conditions: vpcIds.length ? { ArnEquals: { 'ec2:Vpc': vpcIds.map((vpc) => `${arnPrefix}:vpc/${vpc}`) } } : undefined,
    }),
  ];
}

/** cdk-nag's two findings on {@link routePermissions} (their wildcard resources), acknowledged on the role that has them. */
export function acknowledgeRoutePermissions(role: IConstruct, options: RoutePermissionsOptions): void {
  const ack = Validations.of(role);
  ack.acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'ec2:DescribeRouteTables (and, with vpc-endpoint in syncTargetKinds, ec2:DescribeVpcEndpoints) support no ' +
      'resource-level permissions; they are the only actions on "*".',
  });
  ack.acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${options.everyRegion ? '*' : '<AWS::Region>'}:<AWS::AccountId>:route-table/*]`,
    reason:
      'Route tables are created at any time and cannot be listed in advance; the resource is limited to route tables ' +
      (options.everyRegion
        ? 'of this account, in every region because one role (IAM is global) serves the hub in each region of the account.'
        : 'of this account and region, and the vpcIds option narrows it to given VPCs with the ec2:Vpc condition key.'),
  });
}

/**
 * The `detail` part of the rule's event pattern.
 *
 * - `errorCode` must not exist: CloudTrail records failed calls too (with `errorCode`).
 * - The function's own writes are excluded by the caller ARN: a Lambda function's calls
 *   carry `userIdentity.arn` = `arn:<partition>:sts::<account>:assumed-role/<role name>/<session>`.
 *   `anything-but` never matches an absent field, and calls made by another account (VMware
 *   Cloud on AWS manages SDDC routes from its own account) may have no `userIdentity.arn`,
 *   so `$or` also accepts events where the field does not exist.
 * - `alsoExclude`: wildcard patterns of other sessions of sync-routes to leave out as well (the
 *   hub bus: the hub's writes through member roles, `arn:<partition>:sts::*:assumed-role/<member role>/*`).
 */
export function triggerDetailPattern(role: iam.IRole, propagateDeletes = false, alsoExclude: string[] = []): Record<string, unknown> {
  const ownSessions = `arn:${Aws.PARTITION}:sts::${Aws.ACCOUNT_ID}:assumed-role/${role.roleName}/`;
  // One anything-but for every caller left out: two anything-but matchers on one field would be
  // OR'ed, and every ARN differs from one of them. A wildcard list then, with the own sessions
  // as a pattern too (prefix and wildcard do not mix in one anything-but); the ARNs contain no
  // `*` or `\`, so nothing needs escaping.
  const notOurs = alsoExclude.length ? { wildcard: [`${ownSessions}*`, ...alsoExclude] } : { prefix: ownSessions };
  return {
    eventSource: ['ec2.amazonaws.com'],
    eventName: propagateDeletes ? [...TRIGGER_EVENT_NAMES, 'DeleteRoute'] : TRIGGER_EVENT_NAMES,
    errorCode: [{ exists: false }],
    $or: [
      { userIdentity: { arn: [{ exists: false }] } },
      { userIdentity: { arn: [{ 'anything-but': notOurs }] } },
    ],
  };
}

/** The whole pattern of a trigger rule: CloudTrail's EC2 records, with {@link triggerDetailPattern}. */
function triggerEventPattern(role: iam.IRole, propagateDeletes: boolean, alsoExclude: string[] = []): events.EventPattern {
  return {
    source: ['aws.ec2'],
    detailType: ['AWS API Call via CloudTrail'],
    detail: triggerDetailPattern(role, propagateDeletes, alsoExclude),
  };
}

/**
 * Key policy of the topic key, written out instead of CDK's default (which grants the account
 * `kms:*`): the account administers the key with explicit actions, and CloudWatch may use it
 * to publish alarms to the topic. Principals of the account still need IAM permissions.
 */
function topicKeyPolicy(): iam.PolicyDocument {
  return new iam.PolicyDocument({
    statements: [
      new iam.PolicyStatement({
        sid: 'AccountAdministersAndUsesKey',
        principals: [new iam.AccountRootPrincipal()],
        actions: [
          'kms:CancelKeyDeletion', 'kms:CreateAlias', 'kms:CreateGrant', 'kms:Decrypt', 'kms:DeleteAlias',
          'kms:DescribeKey', 'kms:DisableKey', 'kms:DisableKeyRotation', 'kms:EnableKey', 'kms:EnableKeyRotation',
          'kms:Encrypt', 'kms:GenerateDataKey', 'kms:GetKeyPolicy', 'kms:GetKeyRotationStatus', 'kms:ListAliases',
          'kms:ListGrants', 'kms:ListKeyPolicies', 'kms:ListKeyRotations', 'kms:ListResourceTags', 'kms:PutKeyPolicy',
          'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:RetireGrant', 'kms:RevokeGrant', 'kms:RotateKeyOnDemand',
          'kms:ScheduleKeyDeletion', 'kms:TagResource', 'kms:UntagResource', 'kms:UpdateAlias', 'kms:UpdateKeyDescription',
        ],
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublishToTopic',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
      }),
    ],
  });
}

/**
 * Lambda's on-failure destination for a queue, granting `sqs:SendMessage` only: the only call
 * Lambda makes with the function's role. (CDK's `SqsDestination` grants `grantSendMessages`,
 * which adds `sqs:GetQueueAttributes` and `sqs:GetQueueUrl`.)
 */
function sendOnlyQueueDestination(queue: sqs.IQueue): lambda.IDestination {
  return {
    bind: (_scope, fn) => {
      fn.addToRolePolicy(
        new iam.PolicyStatement({ sid: 'KeepFailedEvents', actions: ['sqs:SendMessage'], resources: [queue.queueArn] }),
      );
      return { destination: queue.queueArn };
    },
  };
}

/** An encrypted, TLS-only queue that keeps failed events for the longest time SQS allows. */
function failureQueue(scope: Construct, id: string): sqs.Queue {
  const queue = new sqs.Queue(scope, id, {
    // SSE-SQS: EventBridge cannot write to a queue encrypted with the AWS managed KMS key.
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  Validations.of(queue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason: 'This queue is itself the last stop for failed events (a dead-letter queue / on-failure destination).',
  });
  return queue;
}

function queueAlarm(scope: Construct, id: string, queue: sqs.Queue, description: string): cloudwatch.Alarm {
  return new cloudwatch.Alarm(scope, id, {
    alarmDescription: description,
    metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
}

function validateProps(props: SyncRoutesProps): void {
  for (const vpc of props.vpcIds ?? []) {
    if (!Token.isUnresolved(vpc) && !/^vpc-[0-9a-f]{8,17}$/.test(vpc)) {
      throw new Error(`vpcIds: '${vpc}' is not a VPC ID (vpc-0123456789abcdef0)`);
    }
  }
  for (const kind of props.syncTargetKinds ?? []) {
    if (!(SYNC_TARGET_KINDS as readonly string[]).includes(kind)) {
      throw new Error(`syncTargetKinds: unknown kind '${kind}'; known: ${SYNC_TARGET_KINDS.join(', ')}`);
    }
  }
  const email = props.alertEmail;
  if (email !== undefined && !Token.isUnresolved(email) && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
    throw new Error(`alertEmail: '${email}' is not an e-mail address`);
  }
  if (props.propagateDeletes && !props.destinations?.length) {
    throw new Error(
      'propagateDeletes needs destinations: deletes always have an explicit scope (the CIDRs and pl- IDs whose deletions may be copied)',
    );
  }
  for (const destination of props.destinations ?? []) {
    if (!Token.isUnresolved(destination) && !/^(pl-[0-9a-f]{8,17}|[0-9a-fA-F.:]+\/\d{1,3})$/.test(destination)) {
      throw new Error(`destinations: '${destination}' is neither a CIDR block nor a prefix list ID (pl-...)`);
    }
  }
  const concurrency = props.reservedConcurrency;
  if (concurrency !== undefined && (concurrency < 1 || !Number.isInteger(concurrency))) {
    throw new Error('reservedConcurrency must be a whole number of at least 1');
  }
  const maxConcurrency = props.maxConcurrency;
  if (maxConcurrency !== undefined && !(Number.isInteger(maxConcurrency) && maxConcurrency >= 2 && maxConcurrency <= 1000)) {
    throw new Error(`maxConcurrency must be a whole number from 2 to 1000 (the range Lambda accepts), not ${maxConcurrency}`);
  }
  const window = props.batchingWindow;
  if (window !== undefined && !window.isUnresolved()) {
    const ms = window.toMilliseconds();
    if (ms < 0 || ms > 300_000 || ms % 1000 !== 0) {
      throw new Error(`batchingWindow must be whole seconds from 0 to 300, not ${window.toHumanString()}`);
    }
  }
  const stage = props.httpStageName;
  if (stage !== undefined && !Token.isUnresolved(stage) && !/^[A-Za-z0-9_-]{1,128}$/.test(stage)) {
    throw new Error(`httpStageName: '${stage}' is not a stage name (letters, digits, - and _, at most 128)`);
  }
  for (const [name, value] of [['httpBurstLimit', props.httpBurstLimit], ['httpRateLimit', props.httpRateLimit]] as const) {
    if (value !== undefined && !(value > 0)) {
      throw new Error(`${name} must be a positive number`);
    }
  }
  const maxDeletes = props.maxDeletes;
  if (maxDeletes !== undefined) {
    if (!props.propagateDeletes) {
      throw new Error('maxDeletes needs propagateDeletes: without deletes there is no delete budget');
    }
    const { min, max } = MAX_DELETES_RANGE;
    if (!(Number.isInteger(maxDeletes) && maxDeletes >= min && maxDeletes <= max)) {
      throw new Error(`maxDeletes must be a whole number from ${min} to ${max} (the most routes one request deletes), not ${maxDeletes}`);
    }
  }
  validateHubProps(props);
  const retries = props.retryAttempts;
  if (retries !== undefined && (retries < 0 || retries > 2 || !Number.isInteger(retries))) {
    throw new Error('retryAttempts must be 0, 1 or 2');
  }
}

/** The organization options: each `member*` needs `organizationId`, and every value must be one AWS accepts. */
function validateHubProps(props: SyncRoutesProps): void {
  const { organizationId } = props;
  const given = (['memberRoleName', 'memberExternalId', 'memberAccounts', 'memberRegions'] as const).filter(
    (name) => props[name] !== undefined,
  );
  if (organizationId === undefined) {
    if (given.length) {
      throw new Error(`${given.join(', ')} need${given.length === 1 ? 's' : ''} organizationId: only a hub syncs member accounts`);
    }
    return;
  }
  const check = (name: string, value: string | undefined, pattern: RegExp, what: string) => {
    if (value !== undefined && !Token.isUnresolved(value) && !pattern.test(value)) {
      throw new Error(`${name}: '${value}' is not ${what}`);
    }
  };
  check('organizationId', organizationId, ORGANIZATION_ID_PATTERN, 'an AWS Organizations ID (o- and 10 to 32 lowercase letters or digits)');
  check('memberRoleName', props.memberRoleName, IAM_ROLE_NAME_PATTERN, 'an IAM role name (letters, digits and +=,.@_-, at most 64)');
  const min = MEMBER_EXTERNAL_ID_MIN_LENGTH;
  const max = MEMBER_EXTERNAL_ID_MAX_LENGTH;
  const externalIdRule = `${min} to ${max} of letters, digits and +=,.@:/_-`;
  if (props.memberExternalId === undefined) {
    throw new Error(
      'organizationId needs memberExternalId: the member template\'s role admits the hub only with sts:ExternalId, ' +
        'so a hub without one could never assume it. Give the value of the member StackSet\'s ExternalId parameter ' +
        `(-c memberExternalId=..., ${externalIdRule})`,
    );
  }
  const externalId = new RegExp(`^${EXTERNAL_ID_CHARACTERS}{${min},${max}}$`);
  check('memberExternalId', props.memberExternalId, externalId, `an external id the member template's ExternalId parameter accepts (${externalIdRule})`);
  for (const account of props.memberAccounts ?? []) {
    check('memberAccounts', account, /^\d{12}$/, 'a 12-digit AWS account ID');
  }
  for (const region of props.memberRegions ?? []) {
    check('memberRegions', region, REGION_PATTERN, 'an AWS region name (us-east-1)');
  }
}

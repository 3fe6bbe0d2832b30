import { CfnOutput, CfnParameter, Duration, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { parseBoolean, parseList, parseNumber, parseString } from './context';
import { syncRoutesCode } from './lambda-code';
import { SyncRoutes, SyncTargetKind } from './sync-routes';

/** Path of the sample event used in the `InvokeCommand` output, relative to the repository root. */
export const SAMPLE_EVENT = 'events/manual-dry-run.json';

/**
 * The deployable stack. It only turns context values (`cdk deploy -c name=value`) and one
 * stack parameter into {@link SyncRoutes} props; every resource is in the construct.
 *
 * Context values (all optional):
 * - `alertEmail`: e-mail subscribed to the alerts (else the `alertEmail` stack parameter, empty by default)
 * - `createTrail`: `true` to create a CloudTrail trail (for accounts without one)
 * - `vpcIds`: comma-separated VPC IDs the function may write routes in
 * - `syncTargetKinds`: comma-separated route target kinds to copy
 * - `destinations`: comma-separated CIDRs and pl- IDs in scope (`SYNC_DESTINATIONS`)
 * - `propagateDeletes`: `true` to copy deletions (needs `destinations`); adds the ledger table
 *   of the function's own routes (`LedgerTableName` output)
 * - `maxDeletes`: with `propagateDeletes`, the most routes one request deletes (default 10); a
 *   plan with more deletes none and reports `delete-budget-exceeded`
 * - `sweep`: `off` for no scheduled sweep; `sweepSchedule`: an EventBridge schedule
 *   expression such as `rate(5 minutes)` (default every 15 minutes)
 * - `maxConcurrency`: most invocations the work queue runs at once, 2 to 1000 (default 2);
 *   reserves nothing, so the stack deploys on a new account
 * - `batchingWindow`: whole seconds (0 to 300) the work queue gathers a batch (default 0:
 *   none, batches of whatever is waiting, up to 10)
 * - `reservedConcurrency`: reserved concurrency of the function (default unset; any value
 *   fails the deploy on a new account whose Lambda quota is 10)
 * - `lagAlarmThreshold`: seconds of p99 EventLag before the lag alarm (default 60)
 * - `httpEndpoint`: `true` for the original tool's HTTP API (`httpBurstLimit`, `httpRateLimit`,
 *   `httpStageName`: its stage, default `v1` as the original's client script calls it)
 * - `organizationId`: `o-...` to make this stack the organization's hub (the `sync-routes` bus,
 *   `HubEventBusArn` output, for the member template's rules); with it `memberExternalId`
 *   (required: the member StackSet's `ExternalId`, 8 to 1224 characters), `memberRoleName`
 *   (default `sync-routes-member`), `memberAccounts` and `memberRegions` (comma-separated: the
 *   accounts and regions the sweep covers, default this region)
 * - `architecture`: `x86_64` (default) or `arm64`
 * - `lambdaAsset`: directory holding a prebuilt `bootstrap` (nothing is built then)
 */
export interface SyncRoutesStackProps extends StackProps {
  /**
   * Whether `-c createTrail=true` creates the (multi-region) trail in this stack; with
   * `-c regions=...` only the first region's stack does.
   *
   * @default true
   */
  readonly trailInThisRegion?: boolean;
}

export class SyncRoutesStack extends Stack {
  public readonly syncRoutes: SyncRoutes;

  constructor(scope: Construct, id: string, props: SyncRoutesStackProps = {}) {
    super(scope, id, {
      description: 'sync-routes: copies routes written to a VPC main route table to its custom route tables',
      ...props,
    });

    const architecture = parseArchitecture(this.node.tryGetContext('architecture'));
    const lambdaAsset: string | undefined = this.node.tryGetContext('lambdaAsset');

    // A context value wins; otherwise the e-mail can be given at deploy time as a parameter
    // (`--parameters alertEmail=...`), and an empty value means "no subscription".
    let alertEmail: string | undefined = this.node.tryGetContext('alertEmail') || undefined;
    if (alertEmail === undefined) {
      alertEmail = new CfnParameter(this, 'alertEmail', {
        type: 'String',
        default: '',
        description: 'E-mail address for sync-routes alerts (empty: no subscription). Confirm the e-mail SNS sends.',
        allowedPattern: '^$|^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$',
        constraintDescription: 'must be empty or an e-mail address',
      }).valueAsString;
    }

    this.syncRoutes = new SyncRoutes(this, 'SyncRoutes', {
      code: syncRoutesCode({ assetDir: lambdaAsset, architecture }),
      architecture,
      alertEmail,
      createTrail:
        parseBoolean(this.node.tryGetContext('createTrail'), 'createTrail') && (props.trailInThisRegion ?? true),
      vpcIds: parseList(this.node.tryGetContext('vpcIds')),
      syncTargetKinds: parseList(this.node.tryGetContext('syncTargetKinds')) as SyncTargetKind[] | undefined,
      destinations: parseList(this.node.tryGetContext('destinations')),
      propagateDeletes: parseBoolean(this.node.tryGetContext('propagateDeletes'), 'propagateDeletes'),
      maxDeletes: parseNumber(this.node.tryGetContext('maxDeletes'), 'maxDeletes'),
      sweepSchedule: parseSweep(this.node.tryGetContext('sweep'), this.node.tryGetContext('sweepSchedule')),
      maxConcurrency: parseNumber(this.node.tryGetContext('maxConcurrency'), 'maxConcurrency'),
      batchingWindow: seconds(parseNumber(this.node.tryGetContext('batchingWindow'), 'batchingWindow')),
      reservedConcurrency: parseNumber(this.node.tryGetContext('reservedConcurrency'), 'reservedConcurrency'),
      lagAlarmThreshold: seconds(parseNumber(this.node.tryGetContext('lagAlarmThreshold'), 'lagAlarmThreshold')),
      httpEndpoint: parseBoolean(this.node.tryGetContext('httpEndpoint'), 'httpEndpoint'),
      httpBurstLimit: parseNumber(this.node.tryGetContext('httpBurstLimit'), 'httpBurstLimit'),
      httpRateLimit: parseNumber(this.node.tryGetContext('httpRateLimit'), 'httpRateLimit'),
      httpStageName: parseString(this.node.tryGetContext('httpStageName')),
      organizationId: parseString(this.node.tryGetContext('organizationId')),
      memberRoleName: parseString(this.node.tryGetContext('memberRoleName')),
      memberExternalId: parseString(this.node.tryGetContext('memberExternalId')),
      memberAccounts: parseList(this.node.tryGetContext('memberAccounts')),
      memberRegions: parseList(this.node.tryGetContext('memberRegions')),
    });
    Tags.of(this).add('project', 'sync-routes');

    const fn = this.syncRoutes.function;
    new CfnOutput(this, 'FunctionName', { value: fn.functionName, description: 'The sync-routes Lambda function' });
    new CfnOutput(this, 'TopicArn', { value: this.syncRoutes.topic.topicArn, description: 'SNS topic of notices and alarms' });
    new CfnOutput(this, 'RuleName', { value: this.syncRoutes.rule.ruleName, description: 'EventBridge rule that sends route changes to the work queue' });
    new CfnOutput(this, 'WorkQueueUrl', {
      value: this.syncRoutes.workQueue.queueUrl,
      description: 'Work queue the function consumes: route changes, sweeps and its own continuations',
    });
    new CfnOutput(this, 'WorkDeadLetterQueueUrl', {
      value: this.syncRoutes.workDeadLetterQueue.queueUrl,
      description: 'Work-queue messages that failed 5 receives',
    });
    new CfnOutput(this, 'FailedInvocationsQueueUrl', {
      value: this.syncRoutes.failedInvocationsQueue.queueUrl,
      description: 'Direct asynchronous invocations that failed after all retries',
    });
    new CfnOutput(this, 'RuleDeadLetterQueueUrl', {
      value: this.syncRoutes.ruleDeadLetterQueue.queueUrl,
      description: 'Events EventBridge could not deliver to the work queue',
    });
    new CfnOutput(this, 'DashboardName', {
      value: this.syncRoutes.dashboard.dashboardName,
      description: 'CloudWatch dashboard: lag, routes written, failures, throttles, invocations, work queue, failure queues',
    });
    const { ledger, hubBus } = this.syncRoutes;
    if (ledger) {
      new CfnOutput(this, 'LedgerTableName', {
        value: ledger.tableName,
        description: 'DynamoDB table of the routes sync-routes wrote, the only ones it deletes (kept on cdk destroy)',
      });
    }
    if (hubBus) {
      new CfnOutput(this, 'HubEventBusArn', {
        value: hubBus.eventBusArn,
        description: 'The hub bus: member accounts of the organization forward their route changes to it',
      });
    }
    const { api, apiKey } = this.syncRoutes;
    if (api && apiKey) {
      new CfnOutput(this, 'ApiUrl', {
        value: `${api.url}vpcs/{vpc-id}/route-tables/{route-table-id}`,
        description: 'The original AWS Sync Routes API: PATCH this URL with the X-API-Key header',
      });
      new CfnOutput(this, 'ApiKeyCommand', {
        value: `aws apigateway get-api-key --region ${this.region} --api-key ${apiKey.keyId} --include-value --query value --output text`,
        description: 'Prints the API key (X-API-Key)',
      });
    }
    new CfnOutput(this, 'InvokeCommand', {
      description: 'Run from the repository root: a dry-run manual sync with the sample event',
      value: `aws lambda invoke --region ${this.region} --function-name ${fn.functionName} ` +
        `--cli-binary-format raw-in-base64-out --payload fileb://${SAMPLE_EVENT} response.json`,
    });
  }
}

function parseArchitecture(value: unknown): lambda.Architecture {
  switch (value ?? 'x86_64') {
    case 'x86_64':
      return lambda.Architecture.X86_64;
    case 'arm64':
      return lambda.Architecture.ARM_64;
    default:
      throw new Error(`architecture must be x86_64 or arm64, not '${value}'`);
  }
}

/** `-c sweep=off` disables the sweep; `-c sweepSchedule='rate(5 minutes)'` sets it. */
function parseSweep(sweep: unknown, schedule: unknown): events.Schedule | false | undefined {
  if (sweep === 'off' || sweep === false || sweep === 'false') {
    return false;
  }
  if (sweep !== undefined && sweep !== 'on' && sweep !== true && sweep !== 'true') {
    throw new Error(`sweep must be on or off, not '${sweep}'`);
  }
  if (schedule === undefined || schedule === '') {
    return undefined;
  }
  const expression = String(schedule);
  if (!/^(rate|cron)\(.+\)$/.test(expression)) {
    throw new Error(`sweepSchedule must be an EventBridge schedule expression such as rate(15 minutes), not '${expression}'`);
  }
  return events.Schedule.expression(expression);
}

function seconds(value: number | undefined): Duration | undefined {
  return value === undefined ? undefined : Duration.seconds(value);
}

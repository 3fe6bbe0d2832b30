import { Aws, BootstraplessSynthesizer, CfnCondition, CfnOutput, CfnParameter, Duration, Fn, Stack, StackProps, Tags, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { parseBoolean, parseList, parseString } from './context';
import {
  DEFAULT_MEMBER_ROLE_NAME,
  EXTERNAL_ID_CHARACTERS,
  HUB_BUS_NAME,
  hubRoleName,
  IAM_ROLE_NAME_PATTERN,
  MEMBER_EXTERNAL_ID_MAX_LENGTH,
  MEMBER_EXTERNAL_ID_MIN_LENGTH,
} from './organization';
import { acknowledgeRoutePermissions, REGION_PATTERN, routePermissions, RoutePermissionsOptions, triggerDetailPattern } from './sync-routes';

/** Construct id and stack name of the member template (`cdk.out/SyncRoutesMember.template.json`). */
export const MEMBER_STACK_NAME = 'SyncRoutesMember';

/**
 * The member template of an organization (`-c organizationId=o-...`), deployed by a
 * CloudFormation StackSet with service-managed permissions into every account of an OU, in
 * each region. Everything deploy-specific is a stack parameter, so that one template serves
 * every account:
 *
 * - a rule on the account's default bus forwards the same successful CloudTrail route calls
 *   as the hub's own rule (except the hub's writes in this account) to the hub's bus;
 * - the role the hub function assumes here (`MemberRoleName`), created only in the stack
 *   instance of the hub's region (IAM is global; see below).
 *
 * Flat and asset-free, for accounts that were never CDK-bootstrapped: no nested stacks, no
 * assets, no bootstrap-version parameter or rule (BootstraplessSynthesizer refuses assets),
 * no CDK metadata resource, environment-agnostic.
 *
 * Context values it follows, the same as the hub's (synthesize both with one command line):
 * `propagateDeletes` (DeleteRoute in the rule and the role), `syncTargetKinds` (with
 * `vpc-endpoint`, ec2:DescribeVpcEndpoints), `memberRoleName` (the default of the
 * `MemberRoleName` parameter).
 */
export class SyncRoutesMemberStack extends Stack {
  public readonly forwardingRule: events.Rule;
  /** EventBridge's role for the forwarding rule's target: events:PutEvents on the hub bus. */
  public readonly forwardingRole: iam.Role;
  /** Events the rule could not deliver to the hub bus, with EventBridge's error attributes. */
  public readonly forwardingDeadLetterQueue: sqs.Queue;
  /** The role the hub assumes; its resource has the condition {@link inHubRegion}. */
  public readonly memberRole: iam.Role;
  /** `AWS::Region` = `HubRegion`: the one stack instance of an account that creates the member role. */
  public readonly inHubRegion: CfnCondition;

  constructor(scope: Construct, id: string, props: StackProps = {}) {
    super(scope, id, {
      description: 'sync-routes member: forwards route changes to the organization hub and lets the hub sync this account',
      synthesizer: new BootstraplessSynthesizer(),
      analyticsReporting: false,
      ...props,
    });
    // The hub role's EC2 permissions, for this account's route tables in every region (the
    // hub syncs each region of the account through this one role); jest compares the two.
    const routes: RoutePermissionsOptions = {
      propagateDeletes: parseBoolean(this.node.tryGetContext('propagateDeletes'), 'propagateDeletes'),
      readsEndpoints: parseList(this.node.tryGetContext('syncTargetKinds'))?.includes('vpc-endpoint') ?? false,
      everyRegion: true,
    };

    // --- Parameters: what differs between organizations ------------------------------------
    const hubAccountId = new CfnParameter(this, 'HubAccountId', {
      type: 'String',
      description: 'Account ID of the sync-routes hub (the account of the SyncRoutes stack deployed with organizationId)',
      allowedPattern: '^\\d{12}$',
      constraintDescription: 'must be a 12-digit AWS account ID',
    }).valueAsString;
    const hubRegion = new CfnParameter(this, 'HubRegion', {
      type: 'String',
      description: 'Region of the sync-routes hub; the member role is created by the stack instance in this region',
      allowedPattern: REGION_PATTERN.source,
      constraintDescription: 'must be an AWS region name such as eu-west-1',
    }).valueAsString;
    const memberRoleName = new CfnParameter(this, 'MemberRoleName', {
      type: 'String',
      description: 'Name of the role the hub assumes in this account (the hub\'s memberRoleName, SYNC_MEMBER_ROLE_NAME)',
      default: parseString(this.node.tryGetContext('memberRoleName')) ?? DEFAULT_MEMBER_ROLE_NAME,
      allowedPattern: IAM_ROLE_NAME_PATTERN.source,
      constraintDescription: 'must be an IAM role name (letters, digits and +=,.@_-, at most 64)',
    }).valueAsString;
    const externalId = new CfnParameter(this, 'ExternalId', {
      type: 'String',
      description: 'External id the hub passes when it assumes the member role (the hub\'s memberExternalId, SYNC_MEMBER_EXTERNAL_ID)',
      minLength: MEMBER_EXTERNAL_ID_MIN_LENGTH,
      maxLength: MEMBER_EXTERNAL_ID_MAX_LENGTH,
      allowedPattern: `^${EXTERNAL_ID_CHARACTERS}+$`,
      constraintDescription:
        `must be ${MEMBER_EXTERNAL_ID_MIN_LENGTH} to ${MEMBER_EXTERNAL_ID_MAX_LENGTH} of the characters STS accepts (letters, digits and +=,.@:/_-)`,
    }).valueAsString;

    // IAM names are global to an account, and a StackSet deploys this template once per
    // region: two instances creating the same named role would make every instance after the
    // first fail. So only the instance in the hub's region creates the role (with route-table
    // ARNs of every region, since the hub syncs each of the account's regions through it);
    // the forwarding rule, being regional, is created by every instance.
    this.inHubRegion = new CfnCondition(this, 'InHubRegion', {
      expression: Fn.conditionEquals(Aws.REGION, hubRegion),
    });

    // --- The forwarding rule: this account's route changes to the hub's bus -----------------
    const hubBusArn = `arn:${Aws.PARTITION}:events:${hubRegion}:${hubAccountId}:event-bus/${HUB_BUS_NAME}`;
    this.forwardingRole = new iam.Role(this, 'ForwardingRole', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: 'EventBridge: forward route changes of this account to the sync-routes hub bus',
    });
    // Worth keeping: an event that cannot be delivered (the hub bus not there yet, its policy
    // not admitting this account, the hub region unreachable for longer than EventBridge's
    // 24 hours of retries) is otherwise dropped with only a FailedInvocations metric here.
    // The hub's sweep repairs the routes anyway; the queue is what tells an engineer in this
    // account why forwarding fails (EventBridge adds ERROR_CODE and ERROR_MESSAGE to each
    // message). It costs nothing while empty and needs no asset.
    this.forwardingDeadLetterQueue = new sqs.Queue(this, 'ForwardingDeadLetterQueue', {
      // SSE-SQS: EventBridge cannot write to a queue encrypted with the AWS managed KMS key.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.forwardingDeadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the forwarding rule\'s target: the last stop for its events.',
    });
    // The hub's writes in this account are made through the member role, so their CloudTrail
    // records carry userIdentity.arn arn:<partition>:sts::<this account>:assumed-role/<MemberRoleName>/...:
    // the same exclusion as the hub's own rule, with the member role's name (which exists in
    // every region's pattern even where the role itself is not created).
    const memberRoleByName = iam.Role.fromRoleName(this, 'MemberRoleByName', memberRoleName);
    this.forwardingRule = new events.Rule(this, 'ForwardingRule', {
      description: 'Successful EC2 route and route table calls (CloudTrail), except the sync-routes hub\'s, to the hub bus',
      eventPattern: {
        source: ['aws.ec2'],
        detailType: ['AWS API Call via CloudTrail'],
        detail: triggerDetailPattern(memberRoleByName, routes.propagateDeletes),
      },
      // A bus in another account admitting the organization (aws:PrincipalOrgID) needs the
      // sender to name a role; the target grants it events:PutEvents on that bus only.
      targets: [
        new targets.EventBus(events.EventBus.fromEventBusArn(this, 'HubBus', hubBusArn), {
          role: this.forwardingRole,
          deadLetterQueue: this.forwardingDeadLetterQueue,
        }),
      ],
    });
    // Not before the role may put events: an event matched earlier would go to the queue.
    // (The role itself is implied by the target's RoleArn; its policy is not.)
    this.forwardingRule.node.addDependency(this.forwardingRole.node.findChild('DefaultPolicy'));

    // --- The member role: what the hub function does in this account -----------------------
    // Trusted by the hub function's role only. Not that role's ARN as Principal: IAM checks
    // that a role named as Principal exists when the trust policy is written, and a StackSet
    // may deploy members before the hub (or the hub may be redeployed, which would silently
    // turn such a principal into an unusable unique id). The hub account as principal, with
    // aws:PrincipalArn naming the hub role, admits exactly that role whenever it exists.
    const hubRoleArn = `arn:${Aws.PARTITION}:iam::${hubAccountId}:role/${hubRoleName(hubRegion)}`;
    this.memberRole = new iam.Role(this, 'MemberRole', {
      roleName: memberRoleName,
      description: 'sync-routes hub: read route tables and write routes to custom route tables of this account, all regions',
      assumedBy: new iam.ArnPrincipal(`arn:${Aws.PARTITION}:iam::${hubAccountId}:root`).withConditions({
        StringEquals: { 'sts:ExternalId': externalId },
        ArnEquals: { 'aws:PrincipalArn': hubRoleArn },
      }),
      inlinePolicies: { SyncRoutes: new iam.PolicyDocument({ statements: routePermissions(routes) }) },
    });
    (this.memberRole.node.defaultChild as iam.CfnRole).cfnOptions.condition = this.inHubRegion;
    acknowledgeRoutePermissions(this.memberRole, routes);

    Tags.of(this).add('project', 'sync-routes');
    new CfnOutput(this, 'MemberRoleArn', {
      value: this.memberRole.roleArn,
      description: 'The role the sync-routes hub assumes in this account (only in the hub\'s region\'s stack instance)',
      condition: this.inHubRegion,
    });
    new CfnOutput(this, 'ForwardingRuleArn', {
      value: this.forwardingRule.ruleArn,
      description: 'EventBridge rule that forwards this region\'s route changes to the hub bus',
    });
    new CfnOutput(this, 'ForwardingDeadLetterQueueUrl', {
      value: this.forwardingDeadLetterQueue.queueUrl,
      description: 'Route changes EventBridge could not deliver to the hub bus (see their ERROR_MESSAGE attribute)',
    });
  }
}

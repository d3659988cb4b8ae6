/**
 * The AWS permissions the program needs, as data: for each resource type and data lookup it
 * registers, the EC2 actions the AWS provider calls for it. Existing mode registers none of them.
 *
 * Read from the provider @pulumi/aws 7 wraps, terraform-provider-aws v6 (internal/service/ec2:
 * ec2_instance.go, vpc_security_group.go, ec2_key_pair.go, ec2_eip.go, ec2_ami_data_source.go,
 * vpc_data_source.go, vpc_subnet_data_source.go, ebs_volume.go, ebs_volume_attachment.go,
 * ec2_instance_type_offerings_data_source.go). `read` runs after each create and update and at
 * `pulumi refresh`; the lookups (get…) at every preview and up.
 * tests/unit/operations.test.ts fails on a registered type missing here and writes iam-policy.json.
 */

/** What the provider calls for one resource type, per operation, without the service prefix. */
export interface ProviderCalls {
    /** The AWS service of the actions. Default: ec2. */
    readonly service?: "iam";
    readonly create?: readonly string[];
    readonly read?: readonly string[];
    readonly update?: readonly string[];
    readonly delete?: readonly string[];
}

/** Every resource type and invoke the program registers; those that call no AWS API map to {}. */
export const AWS_CALLS: Readonly<Record<string, ProviderCalls>> = {
    "aws:ec2/instance:Instance": {
        // DescribeImages: the image's root device name, for rootBlockDevice; CreateTags: tags on launch and on the root volume.
        create: ["RunInstances", "CreateTags", "DescribeImages", "DescribeInstances"],
        // Attributes: userData, disableApiStop/-Termination, shutdown behaviour; DescribeTags: the
        // launch-template tag; credit specifications: burstable types (t4g, t3).
        // DescribeSpotInstanceRequests: a spot instance's request, for instanceMarketOptions.
        read: ["DescribeInstances", "DescribeInstanceTypes", "DescribeInstanceAttribute", "DescribeVolumes", "DescribeTags",
            "DescribeInstanceCreditSpecifications", "DescribeSpotInstanceRequests"],
        // instanceType: stop, modify, start; rootVolumeSizeGb: ModifyVolume, then its progress.
        update: ["StopInstances", "ModifyInstanceAttribute", "StartInstances", "ModifyVolume", "DescribeVolumesModifications",
            "ModifyInstanceMetadataOptions", "CreateTags", "DeleteTags"],
        // The provider turns termination protection off before it terminates, and is meant to cancel a spot
        // instance's persistent request first (hashicorp/terraform-provider-aws#38142: README "Spot").
        delete: ["ModifyInstanceAttribute", "CancelSpotInstanceRequests", "TerminateInstances", "DescribeInstances"],
    },
    "aws:ec2/securityGroup:SecurityGroup": {
        // RevokeSecurityGroupEgress: AWS's default allow-all egress rule goes before the declared rules are added.
        create: ["CreateSecurityGroup", "CreateTags", "DescribeSecurityGroups", "RevokeSecurityGroupEgress",
            "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress"],
        read: ["DescribeSecurityGroups"],
        update: ["AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupEgress", "CreateTags", "DeleteTags"],
        // DescribeNetworkInterfaces: the provider looks for network interfaces still holding the group.
        delete: ["DescribeNetworkInterfaces", "DeleteSecurityGroup"],
    },
    "aws:ec2/keyPair:KeyPair": {
        create: ["ImportKeyPair", "CreateTags"],
        read: ["DescribeKeyPairs"],
        update: ["CreateTags", "DeleteTags"],
        delete: ["DeleteKeyPair"],
    },
    "aws:ec2/eip:Eip": {
        create: ["AllocateAddress", "CreateTags", "AssociateAddress", "DescribeAddresses"],
        // DescribeAddressesAttribute: the address's reverse DNS record.
        read: ["DescribeAddresses", "DescribeAddressesAttribute"],
        // A replaced instance: the address moves to the new one.
        update: ["AssociateAddress", "DisassociateAddress", "CreateTags", "DeleteTags"],
        delete: ["DisassociateAddress", "ReleaseAddress"],
    },
    // The cache volume (cacheVolumeSizeGb): CreateTags for its tags at creation; cacheVolumeSizeGb grows it in place.
    "aws:ebs/volume:Volume": {
        create: ["CreateVolume", "CreateTags", "DescribeVolumes"],
        read: ["DescribeVolumes"],
        update: ["ModifyVolume", "DescribeVolumesModifications", "DescribeVolumes", "CreateTags", "DeleteTags"],
        delete: ["DeleteVolume", "DescribeVolumes"],
    },
    "aws:ec2/volumeAttachment:VolumeAttachment": {
        // DescribeInstances: the provider waits for the instance to run before it attaches.
        create: ["AttachVolume", "DescribeVolumes", "DescribeInstances"],
        read: ["DescribeVolumes"],
        // stopInstanceBeforeDetaching: the instance is stopped, and waited for, before the volume is detached.
        delete: ["StopInstances", "DescribeInstances", "DetachVolume", "DescribeVolumes"],
    },
    // A cache volume without subnetId: the first zone that offers the instance type.
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": { read: ["DescribeInstanceTypeOfferings"] },
    "aws:ec2/getAmi:getAmi": { read: ["DescribeImages"] },
    "aws:ec2/getVpc:getVpc": { read: ["DescribeVpcs"] },
    "aws:ec2/getSubnet:getSubnet": { read: ["DescribeSubnets"] },
    // Whether the instance is stopped, at every preview and up.
    "aws:ec2/getInstances:getInstances": { read: ["DescribeInstances"] },
    // The wake policy (idleStopMinutes): iam_policy.go keeps at most five versions, pruning the oldest on update.
    "aws:iam/policy:Policy": {
        service: "iam",
        create: ["CreatePolicy", "TagPolicy"],
        read: ["GetPolicy", "GetPolicyVersion", "ListPolicyTags"],
        update: ["ListPolicyVersions", "CreatePolicyVersion", "DeletePolicyVersion", "TagPolicy", "UntagPolicy"],
        delete: ["ListPolicyVersions", "DeletePolicyVersion", "DeletePolicy"],
    },
    // Made on the machine running Pulumi, and over SSH: no AWS API.
    "tls:index/privateKey:PrivateKey": {},
    "tls:index/getPublicKey:getPublicKey": {},
    "command:remote:Command": {},
    "command:local:Command": {},
};

/** The IAM policies the program makes (the wake policy), by the name it gives them: `buildx-host-wake-<suffix>`. */
export const PROGRAM_POLICIES_ARN = "arn:aws:iam::*:policy/buildx-host-wake-*";

/** An IAM policy document. */
export interface IamPolicy {
    readonly Version: "2012-10-17";
    readonly Statement: readonly {
        readonly Sid: string;
        readonly Effect: "Allow";
        readonly Action: readonly string[];
        readonly Resource: string;
    }[];
}

/**
 * The policy that allows every call the given types need. The EC2 statement is on every resource:
 * the Describe actions cannot be narrowed to resources, and the instance is launched from resources
 * (image, subnet, key pair, group) the program does not own. The IAM statement, there only when a
 * type needs it, is on the policies the program names.
 */
export function iamPolicy(types: Iterable<string>): IamPolicy {
    const actions = { ec2: new Set<string>(), iam: new Set<string>() };
    for (const type of types) {
        const calls = AWS_CALLS[type];
        if (calls === undefined) {
            throw new Error(`${type} has no entry in AWS_CALLS (components/iam-policy.ts): which AWS actions does it need?`);
        }
        const { service = "ec2", ...operations } = calls;
        Object.values(operations).flat().forEach(action => actions[service].add(`${service}:${action}`));
    }
    return {
        Version: "2012-10-17",
        Statement: [
            { Sid: "BuildxHostEc2", Effect: "Allow", Action: [...actions.ec2].sort(), Resource: "*" },
            ...actions.iam.size === 0 ? [] : [{ Sid: "BuildxHostWakePolicy", Effect: "Allow" as const, Action: [...actions.iam].sort(),
                Resource: PROGRAM_POLICIES_ARN }],
        ],
    };
}

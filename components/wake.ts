/**
 * Waking an EC2 build host that the idle power-off stopped: the command an operator runs, the IAM
 * policy that allows only that, and what `pulumi up` says about a stopped host. Pure: no Pulumi calls.
 */

/** An EC2 build host's instance, which the idle power-off may stop. */
export interface WakeTarget {
    readonly instanceId: string;
    /** The instance's ARN, `arn:<partition>:ec2:<region>:<account>:instance/<id>`. */
    readonly instanceArn: string;
}

/** The region an ARN names (its fourth field). */
export function regionOf(arn: string): string {
    const region = arn.split(":")[3];
    if (!region) {
        throw new Error(`${arn} is not an ARN with a region`);
    }
    return region;
}

/**
 * Starts the instances and waits until EC2 reports them healthy (both status checks pass: by then
 * sshd and Docker are up). In the instances' own region, whatever the caller's default is.
 */
export function wakeCommand(targets: readonly WakeTarget[]): string {
    const ids = targets.map(target => target.instanceId).join(" ");
    const region = `--region ${regionOf(targets[0].instanceArn)}`;
    return `aws ec2 start-instances ${region} --instance-ids ${ids} && aws ec2 wait instance-status-ok ${region} --instance-ids ${ids}`;
}

/** An IAM policy document with statements on resources of their own. */
export interface WakePolicyDocument {
    readonly Version: "2012-10-17";
    readonly Statement: readonly {
        readonly Sid: string;
        readonly Effect: "Allow";
        readonly Action: readonly string[];
        readonly Resource: string | readonly string[];
    }[];
}

/** The API calls a wake makes beyond the start: `aws ec2 wait instance-running` and `instance-status-ok`. */
export const WAKE_DESCRIBE_ACTIONS = ["ec2:DescribeInstances", "ec2:DescribeInstanceStatus"] as const;

/**
 * Least privilege for whoever wakes the hosts (an operator, a CI job's role): start these instances
 * and nothing else. The describe calls the waits make support no resource-level permissions in
 * EC2, so they are allowed on "*"; they read, never change.
 */
export function wakePolicyDocument(instanceArns: readonly string[]): WakePolicyDocument {
    return {
        Version: "2012-10-17",
        Statement: [
            { Sid: "StartTheBuildHosts", Effect: "Allow", Action: ["ec2:StartInstances"], Resource: [...instanceArns] },
            { Sid: "WatchThemWake", Effect: "Allow", Action: [...WAKE_DESCRIBE_ACTIONS], Resource: "*" },
        ],
    };
}

/**
 * Why `pulumi up` stops before it touches a stopped host, and how to go on. A `spot` host may have
 * been stopped by EC2 for an interruption: only EC2 starts such an instance again, when capacity
 * returns (EC2's "Stop interrupted Spot Instances"), so the wake command cannot.
 */
export function stoppedHostMessage(target: WakeTarget, spot: boolean = false): string {
    const opening = `EC2 reports the build host's instance ${target.instanceId} stopping or stopped ` +
        `(the idle power-off stops it${spot ? ", EC2 stops this spot instance at an interruption" : ""}, or someone did), ` +
        "so no host step can reach it; nothing on it is changed.";
    const wakeIt = `it, then run pulumi up again:\n    ${wakeCommand([target])}`;
    if (!spot) {
        return `${opening} Wake ${wakeIt}`;
    }
    return `${opening} Ask EC2 why it stopped:\n    aws ec2 describe-instances --region ${regionOf(target.instanceArn)} ` +
        `--instance-ids ${target.instanceId} --query 'Reservations[].Instances[].StateReason.Code' --output text\n` +
        "Server.SpotInstanceShutdown is an interruption: only EC2 starts the instance again, when capacity returns, and the wake " +
        "command fails until then; run pulumi up again once the instance runs. Otherwise (Client.UserInitiatedShutdown: " +
        `the idle power-off, or someone), wake ${wakeIt}`;
}

/**
 * An existing server that powers itself off stays off: nothing in the stack can start it. Said at
 * every preview rather than refused, since its owner may have a way (a hypervisor, Wake-on-LAN).
 */
export function existingHostIdleStopWarning(idleStopMinutes: number): string {
    return `idleStopMinutes ${idleStopMinutes}: this existing server powers itself off after ${idleStopMinutes} idle minutes, and nothing ` +
        "in this stack starts it again: start it by your own means (its hypervisor, Wake-on-LAN, a BMC), or set its idleStopMinutes to 0 " +
        "(a fleet node: pulumi config set --path 'nodes[N].idleStopMinutes' 0)";
}

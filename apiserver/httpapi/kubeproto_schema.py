"""Kubernetes' protobuf schema for the kinds tinykube serves: field numbers, JSON names, Go shapes.

kubeproto.py reads a body client-go sent as `application/vnd.kubernetes.protobuf`
and turns it into the JSON the same client would have sent. Two facts about
each field of Kubernetes' types are needed for that, and neither is in our own
protos (protos/*.proto follow Kubernetes' JSON names, but number fields in
their own order):

* its number and type, from k8s.io/api's `generated.proto` (`optional string
  generateName = 2;` in ObjectMeta), and the JSON name from the Go struct
  tag in `types.go` (`json:"generateName,omitempty"`);
* whether the Go field is a pointer (`Replicas *int32`). Go's protobuf
  marshaller writes every non-pointer field, zero or not: an ObjectMeta
  always carries `selfLink: ""`, `generation: 0` and an empty
  creationTimestamp, a PodSpec always `hostNetwork: false`. Go's JSON
  encoder leaves those out (`omitempty`). So a zero value in a non-pointer
  field means "not set" and is dropped, while a pointer field keeps its zero
  (`replicas: 0`, `automountServiceAccountToken: false` mean something).

One line per message (continued lines are indented), each field as
`NUMBER jsonName TYPE`:

    s string   i integer (int32/int64 varint)   b bool   y bytes (JSON: base64)
    time       meta/v1 Time or MicroTime {1: seconds, 2: nanos} (JSON: RFC 3339)
    qty        resource.Quantity {1: string}     ios  intstr.IntOrString {1: type,
    fields     meta/v1 FieldsV1 {1: raw JSON}         2: intVal, 3: strVal}
    strs       a named []string (ExtraValue) {1: repeated string}
    Name       another message of this table
    ?          a message whose fields tinykube does not model: decoded only far
               enough to see whether it is empty (then dropped, when not a pointer)
    prefixes:  * pointer   [] repeated   {} map (string keys)   ^ embedded: its
               fields are the parent's in JSON (Volume's VolumeSource, `json:",inline"`)

The table covers the messages reachable from the kinds of apimachinery/scheme.py
and the request bodies kubectl sends (Eviction, Scale, DeleteOptions,
SelfSubjectAccessReview, SelfSubjectReview). A message is spelled out when our
protos model it; a field our protos lack is still listed by number and name, so
a value in it reaches strict decoding under its own name (`unknown field
"spec.template.spec.hostUsers"`) instead of vanishing. The numbers and pointer
marks were read from k8s.io/api (commit 10b39a39b, mid-2026) and k8s.io/apimachinery
of the same date: a superset of every older release, as Kubernetes never reuses a
field number, so kubectl 1.32's bodies decode with it.
tests/unit/apiserver/httpapi/test_kubeproto.py checks that every field our protos
model is spelled out here, so a field added to protos/ fails that test until its
line here opens it.
"""

from __future__ import annotations

from dataclasses import dataclass

LEAVES = frozenset({"s", "i", "b", "y", "time", "qty", "ios", "fields", "strs", "?"})
# Bodies that are not stored kinds but arrive on their own: subresources and options.
REQUEST_KINDS = (
    "Eviction",
    "Scale",
    "DeleteOptions",
    "SelfSubjectAccessReview",
    "SelfSubjectReview",
)


@dataclass(frozen=True)
class FieldSpec:
    """One field of a Kubernetes message."""

    number: int
    name: str  # the JSON name
    type: str  # a leaf of LEAVES or a message of MESSAGES
    shape: str = ""  # "" one value, "[]" repeated, "{}" a map with string keys
    pointer: bool = False  # a Go pointer: a zero value is a value, not "unset"
    inline: bool = False  # embedded: its fields join the parent's JSON object


def _field(text: str) -> FieldSpec:
    number, name, token = text.split()
    pointer = token.startswith("*")
    inline = token.startswith("^")
    token = token.lstrip("*^")
    shape = token[:2] if token[:2] in ("[]", "{}") else ""
    return FieldSpec(int(number), name, token[len(shape) :], shape, pointer, inline)


def _parse(text: str) -> dict[str, dict[int, FieldSpec]]:
    joined = text.replace("\n    ", " ").strip()
    out: dict[str, dict[int, FieldSpec]] = {}
    for line in joined.splitlines():
        name, _, fields = line.partition(": ")
        out[name] = {f.number: f for f in (_field(part) for part in fields.split(", "))}
    for name, table in out.items():
        for spec in table.values():
            if spec.type not in LEAVES and spec.type not in out:
                raise ValueError(f"{name}.{spec.name}: no message {spec.type}")
    return out


_TABLE = """
Namespace: 1 metadata ObjectMeta, 2 spec NamespaceSpec, 3 status NamespaceStatus
ObjectMeta: 1 name s, 2 generateName s, 3 namespace s, 4 selfLink s, 5 uid s, 6 resourceVersion s,
    7 generation i, 8 creationTimestamp time, 9 deletionTimestamp *time, 10
    deletionGracePeriodSeconds *i, 11 labels {}s, 12 annotations {}s, 13 ownerReferences
    []OwnerReference, 14 finalizers []s, 17 managedFields []ManagedFieldsEntry
OwnerReference: 5 apiVersion s, 1 kind s, 3 name s, 4 uid s, 6 controller *b, 7 blockOwnerDeletion
    *b
NamespaceSpec: 1 finalizers []s
NamespaceStatus: 1 phase s, 2 conditions []?
Node: 1 metadata ObjectMeta, 2 spec NodeSpec, 3 status NodeStatus
NodeSpec: 1 podCIDR s, 7 podCIDRs []s, 3 providerID s, 4 unschedulable b, 5 taints []Taint, 6
    configSource *?, 2 externalID s, 8 podPreemptionPolicy *?
Taint: 1 key s, 2 value s, 3 effect s, 4 timeAdded *time
NodeStatus: 1 capacity {}qty, 2 allocatable {}qty, 3 phase s, 4 conditions []NodeCondition, 5
    addresses []NodeAddress, 6 daemonEndpoints NodeDaemonEndpoints, 7 nodeInfo NodeSystemInfo, 8
    images []?, 9 volumesInUse []s, 10 volumesAttached []?, 11 config *?, 12 runtimeHandlers []?,
    13 features *?, 14 declaredFeatures []s
NodeCondition: 1 type s, 2 status s, 3 lastHeartbeatTime time, 4 lastTransitionTime time, 5 reason
    s, 6 message s
NodeAddress: 1 type s, 2 address s
NodeDaemonEndpoints: 1 kubeletEndpoint DaemonEndpoint
DaemonEndpoint: 1 Port i
NodeSystemInfo: 1 machineID s, 2 systemUUID s, 3 bootID s, 4 kernelVersion s, 5 osImage s, 6
    containerRuntimeVersion s, 7 kubeletVersion s, 8 kubeProxyVersion s, 9 operatingSystem s, 10
    architecture s, 11 swap *?
Pod: 1 metadata ObjectMeta, 2 spec PodSpec, 3 status PodStatus
PodSpec: 1 volumes []Volume, 20 initContainers []Container, 2 containers []Container, 34
    ephemeralContainers []?, 3 restartPolicy s, 4 terminationGracePeriodSeconds *i, 5
    activeDeadlineSeconds *i, 6 dnsPolicy s, 7 nodeSelector {}s, 8 serviceAccountName s, 9
    serviceAccount s, 21 automountServiceAccountToken *b, 10 nodeName s, 11 hostNetwork b, 12
    hostPID b, 13 hostIPC b, 27 shareProcessNamespace *b, 14 securityContext *PodSecurityContext,
    15 imagePullSecrets []?, 16 hostname s, 17 subdomain s, 18 affinity *Affinity, 19 schedulerName
    s, 22 tolerations []Toleration, 23 hostAliases []HostAlias, 24 priorityClassName s, 25 priority
    *i, 26 dnsConfig *PodDNSConfig, 28 readinessGates []?, 29 runtimeClassName *s, 30
    enableServiceLinks *b, 31 preemptionPolicy *s, 32 overhead {}qty, 33 topologySpreadConstraints
    []TopologySpreadConstraint, 35 setHostnameAsFQDN *b, 36 os *?, 37 hostUsers *b, 38
    schedulingGates []?, 39 resourceClaims []?, 40 resources *?, 41 hostnameOverride *s, 43
    schedulingGroup *?, 44 evictionResponders []?
Volume: 1 name s, 2 volumeSource ^VolumeSource
VolumeSource: 1 hostPath *HostPathVolumeSource, 2 emptyDir *EmptyDirVolumeSource, 3
    gcePersistentDisk *?, 4 awsElasticBlockStore *?, 5 gitRepo *?, 6 secret *SecretVolumeSource, 7
    nfs *?, 8 iscsi *?, 9 glusterfs *?, 10 persistentVolumeClaim *?, 11 rbd *?, 12 flexVolume *?,
    13 cinder *?, 14 cephfs *?, 15 flocker *?, 16 downwardAPI *DownwardAPIVolumeSource, 17 fc *?,
    18 azureFile *?, 19 configMap *ConfigMapVolumeSource, 20 vsphereVolume *?, 21 quobyte *?, 22
    azureDisk *?, 23 photonPersistentDisk *?, 26 projected *ProjectedVolumeSource, 24
    portworxVolume *?, 25 scaleIO *?, 27 storageos *?, 28 csi *?, 29 ephemeral *?, 30 image *?
HostPathVolumeSource: 1 path s, 2 type *s
EmptyDirVolumeSource: 1 medium s, 2 sizeLimit *qty, 3 mode *i
SecretVolumeSource: 1 secretName s, 2 items []KeyToPath, 3 defaultMode *i, 4 optional *b, 5
    defaultUser *i
KeyToPath: 1 key s, 2 path s, 3 mode *i, 4 user *i
DownwardAPIVolumeSource: 1 items []DownwardAPIVolumeFile, 2 defaultMode *i, 3 defaultUser *i
DownwardAPIVolumeFile: 1 path s, 2 fieldRef *ObjectFieldSelector, 3 resourceFieldRef
    *ResourceFieldSelector, 4 mode *i, 5 user *i
ObjectFieldSelector: 1 apiVersion s, 2 fieldPath s
ResourceFieldSelector: 1 containerName s, 2 resource s, 3 divisor qty
ConfigMapVolumeSource: 1 localObjectReference ^LocalObjectReference, 2 items []KeyToPath, 3
    defaultMode *i, 4 optional *b, 5 defaultUser *i
LocalObjectReference: 1 name s
ProjectedVolumeSource: 1 sources []VolumeProjection, 2 defaultMode *i, 3 defaultUser *i
VolumeProjection: 1 secret *SecretProjection, 2 downwardAPI *DownwardAPIProjection, 3 configMap
    *ConfigMapProjection, 4 serviceAccountToken *?, 5 clusterTrustBundle *?, 6 podCertificate *?
SecretProjection: 1 localObjectReference ^LocalObjectReference, 2 items []KeyToPath, 4 optional *b
DownwardAPIProjection: 1 items []DownwardAPIVolumeFile
ConfigMapProjection: 1 localObjectReference ^LocalObjectReference, 2 items []KeyToPath, 4 optional
    *b
Container: 1 name s, 2 image s, 3 command []s, 4 args []s, 5 workingDir s, 6 ports []ContainerPort,
    19 envFrom []EnvFromSource, 7 env []EnvVar, 8 resources ResourceRequirements, 23 resizePolicy
    []?, 24 restartPolicy *s, 25 restartPolicyRules []?, 9 volumeMounts []VolumeMount, 21
    volumeDevices []?, 10 livenessProbe *Probe, 11 readinessProbe *Probe, 22 startupProbe *Probe,
    12 lifecycle *Lifecycle, 13 terminationMessagePath s, 20 terminationMessagePolicy s, 14
    imagePullPolicy s, 15 securityContext *SecurityContext, 16 stdin b, 17 stdinOnce b, 18 tty b
ContainerPort: 1 name s, 2 hostPort i, 3 containerPort i, 4 protocol s, 5 hostIP s
EnvFromSource: 1 prefix s, 2 configMapRef *ConfigMapEnvSource, 3 secretRef *SecretEnvSource
ConfigMapEnvSource: 1 localObjectReference ^LocalObjectReference, 2 optional *b
SecretEnvSource: 1 localObjectReference ^LocalObjectReference, 2 optional *b
EnvVar: 1 name s, 2 value s, 3 valueFrom *EnvVarSource
EnvVarSource: 1 fieldRef *ObjectFieldSelector, 2 resourceFieldRef *ResourceFieldSelector, 3
    configMapKeyRef *ConfigMapKeySelector, 4 secretKeyRef *SecretKeySelector, 5 fileKeyRef *?
ConfigMapKeySelector: 1 localObjectReference ^LocalObjectReference, 2 key s, 3 optional *b
SecretKeySelector: 1 localObjectReference ^LocalObjectReference, 2 key s, 3 optional *b
ResourceRequirements: 1 limits {}qty, 2 requests {}qty, 3 claims []?
VolumeMount: 1 name s, 2 readOnly b, 7 recursiveReadOnly *s, 3 mountPath s, 4 subPath s, 5
    mountPropagation *s, 6 subPathExpr s, 8 bindMountOptions []s
Probe: 1 handler ^ProbeHandler, 2 initialDelaySeconds i, 3 timeoutSeconds i, 4 periodSeconds i, 5
    successThreshold i, 6 failureThreshold i, 7 terminationGracePeriodSeconds *i
ProbeHandler: 1 exec *ExecAction, 2 httpGet *HTTPGetAction, 3 tcpSocket *TCPSocketAction, 4 grpc *?
ExecAction: 1 command []s
HTTPGetAction: 1 path s, 2 port ios, 3 host s, 4 scheme s, 5 httpHeaders []HTTPHeader, 6 protocol
    *s
HTTPHeader: 1 name s, 2 value s
TCPSocketAction: 1 port ios, 2 host s
Lifecycle: 1 postStart *LifecycleHandler, 2 preStop *LifecycleHandler, 3 stopSignal *s
LifecycleHandler: 1 exec *ExecAction, 2 httpGet *HTTPGetAction, 3 tcpSocket *TCPSocketAction, 4
    sleep *SleepAction
SleepAction: 1 seconds i
SecurityContext: 1 capabilities *Capabilities, 2 privileged *b, 3 seLinuxOptions *?, 10
    windowsOptions *?, 4 runAsUser *i, 8 runAsGroup *i, 5 runAsNonRoot *b, 6 readOnlyRootFilesystem
    *b, 7 allowPrivilegeEscalation *b, 9 procMount *s, 11 seccompProfile *SeccompProfile, 12
    appArmorProfile *?
Capabilities: 1 add []s, 2 drop []s
SeccompProfile: 1 type s, 2 localhostProfile *s
PodSecurityContext: 1 seLinuxOptions *?, 8 windowsOptions *?, 2 runAsUser *i, 6 runAsGroup *i, 3
    runAsNonRoot *b, 4 supplementalGroups []i, 12 supplementalGroupsPolicy *s, 5 fsGroup *i, 7
    sysctls []?, 9 fsGroupChangePolicy *s, 10 seccompProfile *SeccompProfile, 11 appArmorProfile
    *?, 13 seLinuxChangePolicy *s
Affinity: 1 nodeAffinity *NodeAffinity, 2 podAffinity *PodAffinity, 3 podAntiAffinity
    *PodAntiAffinity
NodeAffinity: 1 requiredDuringSchedulingIgnoredDuringExecution *NodeSelector, 2
    preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm
NodeSelector: 1 nodeSelectorTerms []NodeSelectorTerm
NodeSelectorTerm: 1 matchExpressions []NodeSelectorRequirement, 2 matchFields
    []NodeSelectorRequirement
NodeSelectorRequirement: 1 key s, 2 operator s, 3 values []s
PreferredSchedulingTerm: 1 weight i, 2 preference NodeSelectorTerm
PodAffinity: 1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm, 2
    preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm
PodAffinityTerm: 1 labelSelector *LabelSelector, 2 namespaces []s, 3 topologyKey s, 4
    namespaceSelector *?, 5 matchLabelKeys []s, 6 mismatchLabelKeys []s
LabelSelector: 1 matchLabels {}s, 2 matchExpressions []LabelSelectorRequirement
LabelSelectorRequirement: 1 key s, 2 operator s, 3 values []s
WeightedPodAffinityTerm: 1 weight i, 2 podAffinityTerm PodAffinityTerm
PodAntiAffinity: 1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm, 2
    preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm
Toleration: 1 key s, 2 operator s, 3 value s, 4 effect s, 5 tolerationSeconds *i
HostAlias: 1 ip s, 2 hostnames []s
PodDNSConfig: 1 nameservers []s, 2 searches []s, 3 options []PodDNSConfigOption
PodDNSConfigOption: 1 name s, 2 value *s
TopologySpreadConstraint: 1 maxSkew i, 2 topologyKey s, 3 whenUnsatisfiable s, 4 labelSelector
    *LabelSelector, 5 minDomains *i, 6 nodeAffinityPolicy *s, 7 nodeTaintsPolicy *s, 8
    matchLabelKeys []s
PodStatus: 17 observedGeneration i, 1 phase s, 2 conditions []PodCondition, 3 message s, 4 reason
    s, 11 nominatedNodeName s, 5 hostIP s, 16 hostIPs []?, 6 podIP s, 12 podIPs []PodIP, 7
    startTime *time, 10 initContainerStatuses []ContainerStatus, 8 containerStatuses
    []ContainerStatus, 9 qosClass s, 13 ephemeralContainerStatuses []?, 14 resize s, 15
    resourceClaimStatuses []?, 18 extendedResourceClaimStatus *?, 19 allocatedResources {}qty, 20
    resources *?, 21 nodeAllocatableResourceClaimStatuses []?, 22 volumeHealth []?
PodCondition: 1 type s, 7 observedGeneration i, 2 status s, 3 lastProbeTime time, 4
    lastTransitionTime time, 5 reason s, 6 message s
PodIP: 1 ip s
ContainerStatus: 1 name s, 2 state ContainerState, 3 lastState ContainerState, 4 ready b, 5
    restartCount i, 6 image s, 7 imageID s, 8 containerID s, 9 started *b, 10 allocatedResources
    {}qty, 11 resources *?, 12 volumeMounts []?, 13 user *?, 14 allocatedResourcesStatus []?, 15
    stopSignal *s
ContainerState: 1 waiting *ContainerStateWaiting, 2 running *ContainerStateRunning, 3 terminated
    *ContainerStateTerminated
ContainerStateWaiting: 1 reason s, 2 message s
ContainerStateRunning: 1 startedAt time
ContainerStateTerminated: 1 exitCode i, 2 signal i, 3 reason s, 4 message s, 5 startedAt time, 6
    finishedAt time, 7 containerID s
Service: 1 metadata ObjectMeta, 2 spec ServiceSpec, 3 status ServiceStatus
ServiceSpec: 1 ports []ServicePort, 2 selector {}s, 3 clusterIP s, 18 clusterIPs []s, 4 type s, 5
    externalIPs []s, 7 sessionAffinity s, 8 loadBalancerIP s, 9 loadBalancerSourceRanges []s, 10
    externalName s, 11 externalTrafficPolicy s, 12 healthCheckNodePort i, 13
    publishNotReadyAddresses b, 14 sessionAffinityConfig *SessionAffinityConfig, 19 ipFamilies []s,
    17 ipFamilyPolicy *s, 20 allocateLoadBalancerNodePorts *b, 21 loadBalancerClass *s, 22
    internalTrafficPolicy *s, 23 trafficDistribution *s
ServicePort: 1 name s, 2 protocol s, 6 appProtocol *s, 3 port i, 4 targetPort ios, 5 nodePort i
SessionAffinityConfig: 1 clientIP *ClientIPConfig
ClientIPConfig: 1 timeoutSeconds *i
ServiceStatus: 1 loadBalancer LoadBalancerStatus, 2 conditions []?
LoadBalancerStatus: 1 ingress []LoadBalancerIngress
LoadBalancerIngress: 1 ip s, 2 hostname s, 3 ipMode *s, 4 ports []?
Endpoints: 1 metadata ObjectMeta, 2 subsets []EndpointSubset
EndpointSubset: 1 addresses []EndpointAddress, 2 notReadyAddresses []EndpointAddress, 3 ports
    []EndpointPort
EndpointAddress: 1 ip s, 3 hostname s, 4 nodeName *s, 2 targetRef *ObjectReference
ObjectReference: 1 kind s, 2 namespace s, 3 name s, 4 uid s, 5 apiVersion s, 6 resourceVersion s, 7
    fieldPath s
EndpointPort: 1 name s, 2 port i, 3 protocol s, 4 appProtocol *s
Event: 1 metadata ObjectMeta, 2 involvedObject ObjectReference, 3 reason s, 4 message s, 5 source
    EventSource, 6 firstTimestamp time, 7 lastTimestamp time, 8 count i, 9 type s, 10 eventTime
    time, 11 series *?, 12 action s, 13 related *?, 14 reportingComponent s, 15 reportingInstance s
EventSource: 1 component s, 2 host s
ConfigMap: 1 metadata ObjectMeta, 4 immutable *b, 2 data {}s, 3 binaryData {}y
Secret: 1 metadata ObjectMeta, 5 immutable *b, 2 data {}y, 4 stringData {}s, 3 type s
Deployment: 1 metadata ObjectMeta, 2 spec DeploymentSpec, 3 status DeploymentStatus
DeploymentSpec: 1 replicas *i, 2 selector *LabelSelector, 3 template PodTemplateSpec, 4 strategy
    DeploymentStrategy, 5 minReadySeconds i, 6 revisionHistoryLimit *i, 7 paused b, 9
    progressDeadlineSeconds *i
PodTemplateSpec: 1 metadata ObjectMeta, 2 spec PodSpec
DeploymentStrategy: 1 type s, 2 rollingUpdate *RollingUpdateDeployment
RollingUpdateDeployment: 1 maxUnavailable *ios, 2 maxSurge *ios
DeploymentStatus: 1 observedGeneration i, 2 replicas i, 3 updatedReplicas i, 7 readyReplicas i, 4
    availableReplicas i, 5 unavailableReplicas i, 9 terminatingReplicas *i, 6 conditions
    []DeploymentCondition, 8 collisionCount *i
DeploymentCondition: 1 type s, 2 status s, 6 lastUpdateTime time, 7 lastTransitionTime time, 4
    reason s, 5 message s
ReplicaSet: 1 metadata ObjectMeta, 2 spec ReplicaSetSpec, 3 status ReplicaSetStatus
ReplicaSetSpec: 1 replicas *i, 4 minReadySeconds i, 2 selector *LabelSelector, 3 template
    PodTemplateSpec
ReplicaSetStatus: 1 replicas i, 2 fullyLabeledReplicas i, 4 readyReplicas i, 5 availableReplicas i,
    7 terminatingReplicas *i, 3 observedGeneration i, 6 conditions []ReplicaSetCondition
ReplicaSetCondition: 1 type s, 2 status s, 3 lastTransitionTime time, 4 reason s, 5 message s
Lease: 1 metadata ObjectMeta, 2 spec LeaseSpec
LeaseSpec: 1 holderIdentity *s, 2 leaseDurationSeconds *i, 3 acquireTime *time, 4 renewTime *time,
    5 leaseTransitions *i, 6 strategy *s, 7 preferredHolder *s
CertificateSigningRequest: 1 metadata ObjectMeta, 2 spec CertificateSigningRequestSpec, 3 status
    CertificateSigningRequestStatus
CertificateSigningRequestSpec: 1 request y, 7 signerName s, 8 expirationSeconds *i, 5 usages []s, 2
    username s, 3 uid s, 4 groups []s, 6 extra {}strs
CertificateSigningRequestStatus: 1 conditions []CertificateSigningRequestCondition, 2 certificate y
CertificateSigningRequestCondition: 1 type s, 6 status s, 2 reason s, 3 message s, 4 lastUpdateTime
    time, 5 lastTransitionTime time
Role: 1 metadata ObjectMeta, 2 rules []PolicyRule
PolicyRule: 1 verbs []s, 2 apiGroups []s, 3 resources []s, 4 resourceNames []s, 5 nonResourceURLs
    []s
ClusterRole: 1 metadata ObjectMeta, 2 rules []PolicyRule, 3 aggregationRule *?
RoleBinding: 1 metadata ObjectMeta, 2 subjects []Subject, 3 roleRef RoleRef
Subject: 1 kind s, 2 apiGroup s, 3 name s, 4 namespace s
RoleRef: 1 apiGroup s, 2 kind s, 3 name s
ClusterRoleBinding: 1 metadata ObjectMeta, 2 subjects []Subject, 3 roleRef RoleRef
Eviction: 1 metadata ObjectMeta, 2 deleteOptions *DeleteOptions
ManagedFieldsEntry: 1 manager s, 2 operation s, 3 apiVersion s, 4 time *time, 6 fieldsType s, 7
    fieldsV1 *fields, 8 subresource s
DeleteOptions: 1 gracePeriodSeconds *i, 2 preconditions *Preconditions, 3 orphanDependents *b, 4
    propagationPolicy *s, 5 dryRun []s, 6 ignoreStoreReadErrorWithClusterBreakingPotential *b
Preconditions: 1 uid *s, 2 resourceVersion *s
Scale: 1 metadata ObjectMeta, 2 spec ScaleSpec, 3 status ScaleStatus
ScaleSpec: 1 replicas i
ScaleStatus: 1 replicas i, 2 selector s
SelfSubjectAccessReview: 1 metadata ObjectMeta, 2 spec SelfSubjectAccessReviewSpec, 3 status
    SubjectAccessReviewStatus
SelfSubjectAccessReviewSpec: 1 resourceAttributes *ResourceAttributes, 2 nonResourceAttributes
    *NonResourceAttributes
ResourceAttributes: 1 namespace s, 2 verb s, 3 group s, 4 version s, 5 resource s, 6 subresource s,
    7 name s, 8 fieldSelector *FieldSelectorAttributes, 9 labelSelector *LabelSelectorAttributes
FieldSelectorAttributes: 1 rawSelector s, 2 requirements []FieldSelectorRequirement
FieldSelectorRequirement: 1 key s, 2 operator s, 3 values []s
LabelSelectorAttributes: 1 rawSelector s, 2 requirements []LabelSelectorRequirement
NonResourceAttributes: 1 path s, 2 verb s
SubjectAccessReviewStatus: 1 allowed b, 4 denied b, 2 reason s, 3 evaluationError s
SelfSubjectReview: 1 metadata ObjectMeta, 2 status SelfSubjectReviewStatus
SelfSubjectReviewStatus: 1 userInfo UserInfo
UserInfo: 1 username s, 2 uid s, 3 groups []s, 4 extra {}strs

"""
MESSAGES: dict[str, dict[int, FieldSpec]] = _parse(_TABLE)

package cache

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// realisticPod builds a pod as a kubelet sees it from the apiserver: a
// Deployment's replica with owner references, managedFields, a container
// with env, mounts, probes and resources, a projected service account
// token volume, defaulted fields, and a Running status with conditions.
// Its JSON is about 3.5 KB, like real pods.
func realisticPod(i int, namespace, node, app string, phase corev1.PodPhase) *corev1.Pod {
	name := fmt.Sprintf("%s-7d9c8b6f5-%05d", app, i)
	created := metav1.NewTime(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second))
	uid := types.UID(fmt.Sprintf("6f1c2d3e-%04x-4a5b-9c8d-%012x", i%65536, i))
	trueV, falseV := true, false
	grace := int64(30)
	tokenTTL := int64(3607)
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			GenerateName:      app + "-7d9c8b6f5-",
			Namespace:         namespace,
			UID:               uid,
			ResourceVersion:   strconv.Itoa(100000 + i),
			CreationTimestamp: created,
			Labels: map[string]string{
				"app":               app,
				"pod-template-hash": "7d9c8b6f5",
				"tier":              []string{"frontend", "backend", "cache"}[i%3],
			},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-30T08:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-7d9c8b6f5",
				UID: "0a1b2c3d-1111-2222-3333-444455556666", Controller: &trueV, BlockOwnerDeletion: &trueV,
			}},
			ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
				Time: &created, FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"0a1b2c3d-1111-2222-3333-444455556666\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"main\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{}}}}}`)},
			}},
		},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{
				Name: "kube-api-access-x7k2p",
				VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &tokenTTL, Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
				}}},
			}, {
				Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: app + "-config"}}},
			}},
			Containers: []corev1.Container{{
				Name:  "main",
				Image: "registry.example.com/team/" + app + ":1.4.2",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env: []corev1.EnvVar{
					{Name: "LOG_LEVEL", Value: "info"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
					{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.nodeName"}}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "config", MountPath: "/etc/" + app, ReadOnly: true},
					{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
					PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3,
				},
				TerminationMessagePath:   "/dev/termination-log",
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ImagePullPolicy:          corev1.PullIfNotPresent,
				SecurityContext:          &corev1.SecurityContext{AllowPrivilegeEscalation: &falseV, RunAsNonRoot: &trueV},
			}},
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: &grace,
			DNSPolicy:                     corev1.DNSClusterFirst,
			ServiceAccountName:            "default",
			DeprecatedServiceAccount:      "default",
			NodeName:                      node,
			SecurityContext:               &corev1.PodSecurityContext{},
			SchedulerName:                 "default-scheduler",
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))},
			},
			Priority:           ptr(int32(0)),
			EnableServiceLinks: &trueV,
			PreemptionPolicy:   ptr(corev1.PreemptLowerPriority),
		},
		Status: corev1.PodStatus{Phase: phase, QOSClass: corev1.PodQOSBurstable},
	}
	if node != "" {
		ip := fmt.Sprintf("10.244.%d.%d", (i/250)%250, i%250+2)
		pod.Status.HostIP = "192.168.10.7"
		pod.Status.HostIPs = []corev1.HostIP{{IP: "192.168.10.7"}}
		pod.Status.PodIP = ip
		pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		pod.Status.StartTime = &created
		for _, c := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
			pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: created})
		}
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: "main", Ready: true, Started: &trueV, RestartCount: 0,
			Image: "registry.example.com/team/" + app + ":1.4.2", ImageID: "registry.example.com/team/" + app + "@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			ContainerID: fmt.Sprintf("containerd://%064x", i),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: created}},
		}}
	} else {
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", LastTransitionTime: created}}
	}
	return pod
}

func ptr[T any](v T) *T { return &v }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// podListItem is a pod as a LIST answer carries it: without kind and apiVersion.
func podListItem(t testing.TB, p *corev1.Pod) []byte {
	c := p.DeepCopy()
	c.TypeMeta = metav1.TypeMeta{}
	return mustJSON(t, c)
}

// generatePods makes n pods over nodes and namespaces, 90% Running.
func generatePods(n, nodes, namespaces int) []*corev1.Pod {
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		phase := corev1.PodRunning
		if i%10 == 9 {
			phase = corev1.PodPending
		}
		pods[i] = realisticPod(i, fmt.Sprintf("team-%d", i%namespaces), fmt.Sprintf("node-%d", i%nodes), fmt.Sprintf("app-%d", i%20), phase)
	}
	return pods
}

func TestRealisticPodSize(t *testing.T) {
	b := mustJSON(t, realisticPod(1, "team-1", "node-1", "web", corev1.PodRunning))
	if len(b) < 3000 || len(b) > 4500 {
		t.Fatalf("benchmark pods should be 3-4.5 KB like real ones, got %d bytes", len(b))
	}
}

package tunnel

import (
	"bytes"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"
	"sigs.k8s.io/yaml"
)

// APIServerContainer is the container kubeadm names in its manifest.
const APIServerContainer = "kube-apiserver"

// ForeignEgressError says the API server already has an egress
// configuration that is not edgeadm's: replacing it would break whatever
// the user routes through it.
type ForeignEgressError struct{ Value string }

func (e *ForeignEgressError) Error() string {
	return fmt.Sprintf("kube-apiserver already runs with --%s=%s, which edgeadm did not set: adding the tunnel would replace your egress configuration; "+
		"add a \"cluster\" selection over GRPC to the proxy server's socket to that file yourself, or run addon with --tunnel=false", EgressFlag, e.Value)
}

// ConfigureAPIServer returns manifest (a kube-apiserver static pod) with the
// egress flag and the hostPath mounts of the egress file and the socket
// folder added. A manifest that already has exactly these is returned as it
// is, with changed false, so running it twice changes nothing.
//
// The result is written as kubeadm writes its manifests (its own marshaller),
// so a later "kubeadm upgrade" diff shows only the change.
func ConfigureAPIServer(manifest []byte, p Paths) (out []byte, changed bool, err error) {
	pod, err := parseAPIServerPod(manifest)
	if err != nil {
		return nil, false, err
	}
	c := apiServerContainer(pod)
	want := "--" + EgressFlag + "=" + p.EgressConfig
	flagSet := false
	for _, a := range c.Command {
		if v, ok := flagValue(a, EgressFlag); ok {
			if v != p.EgressConfig {
				return nil, false, &ForeignEgressError{Value: v}
			}
			flagSet = true
		}
	}
	if !flagSet {
		c.Command = append(c.Command, want)
	}
	fileType, dirType := corev1.HostPathFile, corev1.HostPathDirectoryOrCreate
	volChanged, err := ensureMount(pod, c, EgressConfigVolume, p.EgressConfig, &fileType, true)
	if err != nil {
		return nil, false, err
	}
	udsChanged, err := ensureMount(pod, c, UDSVolume, p.UDSDir, &dirType, false)
	if err != nil {
		return nil, false, err
	}
	if flagSet && !volChanged && !udsChanged {
		return manifest, false, nil
	}
	out, err = kubeadmutil.MarshalToYaml(pod, corev1.SchemeGroupVersion)
	if err != nil {
		return nil, false, fmt.Errorf("write the kube-apiserver manifest: %w", err)
	}
	return out, true, nil
}

// IsConfigured says whether manifest already carries edgeadm's egress flag.
func IsConfigured(manifest []byte, p Paths) (bool, error) {
	pod, err := parseAPIServerPod(manifest)
	if err != nil {
		return false, err
	}
	for _, a := range apiServerContainer(pod).Command {
		if v, ok := flagValue(a, EgressFlag); ok && v == p.EgressConfig {
			return true, nil
		}
	}
	return false, nil
}

// parseAPIServerPod reads a kube-apiserver static pod, refusing fields that
// a Pod does not have: writing such a manifest back would drop them.
func parseAPIServerPod(manifest []byte) (*corev1.Pod, error) {
	if len(bytes.TrimSpace(manifest)) == 0 {
		return nil, fmt.Errorf("the kube-apiserver manifest is empty")
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(manifest, pod); err != nil {
		return nil, fmt.Errorf("the kube-apiserver manifest is not a Pod edgeadm can edit without losing parts of it (%v): configure the egress selector by hand (docs/tunnel.md) or run addon with --tunnel=false", err)
	}
	if pod.Kind != "Pod" {
		return nil, fmt.Errorf("the kube-apiserver manifest holds a %q, not a Pod", pod.Kind)
	}
	if apiServerContainer(pod) == nil {
		return nil, fmt.Errorf("the kube-apiserver manifest has no container named %q: this is not a kubeadm manifest; configure the egress selector by hand (docs/tunnel.md) or run addon with --tunnel=false", APIServerContainer)
	}
	return pod, nil
}

func apiServerContainer(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == APIServerContainer {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// flagValue reads "--name=value" (kubeadm writes every flag that way).
func flagValue(arg, name string) (string, bool) {
	return strings.CutPrefix(arg, "--"+name+"=")
}

// ensureMount adds a hostPath volume and its mount at the same path, unless
// both are there already. A volume of that name that mounts something else
// is refused rather than overwritten.
func ensureMount(pod *corev1.Pod, c *corev1.Container, name, hostPath string, t *corev1.HostPathType, readOnly bool) (bool, error) {
	changed := false
	found := false
	for _, v := range pod.Spec.Volumes {
		if v.Name != name {
			continue
		}
		if v.HostPath == nil || v.HostPath.Path != hostPath {
			return false, fmt.Errorf("the kube-apiserver manifest already has a volume %q that is not hostPath %s: rename it, or run addon with --tunnel=false", name, hostPath)
		}
		found = true
	}
	if !found {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name,
			VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostPath, Type: t}}})
		changed = true
	}
	found = false
	for _, m := range c.VolumeMounts {
		if m.Name != name {
			continue
		}
		if m.MountPath != hostPath {
			return false, fmt.Errorf("the kube-apiserver container already mounts volume %q at %s, not %s: run addon with --tunnel=false", name, m.MountPath, hostPath)
		}
		found = true
	}
	if !found {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: hostPath, ReadOnly: readOnly})
		changed = true
	}
	return changed, nil
}

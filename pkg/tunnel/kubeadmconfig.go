package tunnel

import (
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// kubeadmListArgVersions are the ClusterConfiguration versions whose
// extraArgs are a list of {name, value} (v1beta3's map form is gone from
// kubeadm 1.37).
var kubeadmListArgVersions = map[string]bool{"kubeadm.k8s.io/v1beta4": true, "kubeadm.k8s.io/v1": true}

// PatchClusterConfiguration returns kubeadm-config's ClusterConfiguration
// with the egress flag in apiServer.extraArgs and the two mounts in
// apiServer.extraVolumes, named as ConfigureAPIServer names them, so that
// "kubeadm upgrade" writes back the same manifest instead of dropping the
// change (kubeadm#2157). A document that has them is returned unchanged.
func PatchClusterConfiguration(doc []byte, p Paths) (out []byte, changed bool, err error) {
	cfg, api, err := parseClusterConfiguration(doc)
	if err != nil {
		return nil, false, err
	}
	args, _ := api["extraArgs"].([]any)
	found := false
	for _, a := range args {
		m, _ := a.(map[string]any)
		if m["name"] != EgressFlag {
			continue
		}
		if v, _ := m["value"].(string); v != p.EgressConfig {
			return nil, false, &ForeignEgressError{Value: v}
		}
		found = true
	}
	if !found {
		api["extraArgs"] = append(args, map[string]any{"name": EgressFlag, "value": p.EgressConfig})
		changed = true
	}
	vols, _ := api["extraVolumes"].([]any)
	for _, want := range []map[string]any{
		{"name": EgressConfigVolume, "hostPath": p.EgressConfig, "mountPath": p.EgressConfig, "readOnly": true, "pathType": "File"},
		{"name": UDSVolume, "hostPath": p.UDSDir, "mountPath": p.UDSDir, "pathType": "DirectoryOrCreate"},
	} {
		have := false
		for _, v := range vols {
			m, _ := v.(map[string]any)
			if m["name"] != want["name"] {
				continue
			}
			if m["hostPath"] != want["hostPath"] || m["mountPath"] != want["mountPath"] {
				return nil, false, fmt.Errorf("kubeadm-config's apiServer.extraVolumes already has %q for another path (%v): rename it, or run addon with --tunnel=false", want["name"], m["hostPath"])
			}
			have = true
		}
		if !have {
			vols = append(vols, want)
			changed = true
		}
	}
	if !changed {
		return doc, false, nil
	}
	api["extraVolumes"] = vols
	out, err = yaml.Marshal(cfg)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// UnpatchClusterConfiguration removes what PatchClusterConfiguration added
// (by name), for detach when the document changed since addon kept its
// original (a kubeadm upgrade rewrote it). Unchanged when nothing is there.
func UnpatchClusterConfiguration(doc []byte, p Paths) (out []byte, changed bool, err error) {
	cfg, api, err := parseClusterConfiguration(doc)
	if err != nil {
		return nil, false, err
	}
	keep := func(key string, drop func(m map[string]any) bool) {
		list, _ := api[key].([]any)
		var kept []any
		for _, e := range list {
			if m, ok := e.(map[string]any); ok && drop(m) {
				changed = true
				continue
			}
			kept = append(kept, e)
		}
		if len(kept) == 0 {
			delete(api, key)
		} else {
			api[key] = kept
		}
	}
	keep("extraArgs", func(m map[string]any) bool { return m["name"] == EgressFlag && m["value"] == p.EgressConfig })
	keep("extraVolumes", func(m map[string]any) bool { return m["name"] == EgressConfigVolume || m["name"] == UDSVolume })
	if !changed {
		return doc, false, nil
	}
	out, err = yaml.Marshal(cfg)
	return out, err == nil, err
}

func parseClusterConfiguration(doc []byte) (cfg, api map[string]any, err error) {
	if err := yaml.Unmarshal(doc, &cfg); err != nil || cfg == nil {
		return nil, nil, fmt.Errorf("kubeadm-config's ClusterConfiguration does not parse (%v): fix kube-system/kubeadm-config, or run addon with --tunnel=false", err)
	}
	if kind, _ := cfg["kind"].(string); kind != "ClusterConfiguration" {
		return nil, nil, fmt.Errorf("kubeadm-config's ClusterConfiguration holds a %q", kind)
	}
	v, _ := cfg["apiVersion"].(string)
	if !kubeadmListArgVersions[v] {
		return nil, nil, fmt.Errorf("kubeadm-config's ClusterConfiguration is %s; edgeadm edits only %s: upgrade it with \"kubeadm config migrate\" first, or run addon with --tunnel=false",
			v, strings.Join([]string{"kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1"}, " and "))
	}
	api, _ = cfg["apiServer"].(map[string]any)
	if api == nil {
		api = map[string]any{}
		cfg["apiServer"] = api
	}
	return cfg, api, nil
}

package edgehub

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// learnLoop reads the cluster's default/kubernetes EndpointSlices (the
// apiservers' own addresses) while online, and hands them to the balancer
// as extra endpoints; a learned endpoint is used only once probes answer.
func (s *Server) learnLoop(ctx context.Context) {
	t := time.NewTicker(s.tuning.LearnInterval)
	defer t.Stop()
	for {
		if online, _ := s.lb.Online(); online && s.creds.get() != nil {
			urls, err := s.learnOnce(ctx)
			if err != nil {
				s.log.V(2).Info("could not learn apiserver endpoints", "err", err.Error())
			} else if len(urls) > 0 {
				s.lb.SetLearned(urls)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) learnOnce(ctx context.Context) ([]*url.URL, error) {
	active := s.lb.Active()
	if active == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := active.String() + "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=" + url.QueryEscape("kubernetes.io/service-name=kubernetes")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("EndpointSlices of default/kubernetes: %s", resp.Status)
	}
	var list struct {
		Items []struct {
			AddressType string `json:"addressType"`
			Endpoints   []struct {
				Addresses  []string `json:"addresses"`
				Conditions struct {
					Ready *bool `json:"ready"`
				} `json:"conditions"`
			} `json:"endpoints"`
			Ports []struct {
				Name *string `json:"name"`
				Port *int32  `json:"port"`
			} `json:"ports"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("decode EndpointSlices: %w", err)
	}
	var out []*url.URL
	for _, sl := range list.Items {
		var port int32
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "https") {
				port = *p.Port
			}
		}
		if port == 0 || (sl.AddressType != "IPv4" && sl.AddressType != "IPv6") {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				out = append(out, &url.URL{Scheme: "https", Host: net.JoinHostPort(a, strconv.Itoa(int(port)))})
			}
		}
	}
	return out, nil
}

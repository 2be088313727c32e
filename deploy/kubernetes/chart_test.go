package kubernetes

import (
	"encoding/base64"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Every value set renders, every object decodes strictly as its Kubernetes
// type (a misspelt field or a wrong type fails here, not at `kubectl
// apply`), and only kinds a bare cluster knows are rendered (no CRDs).
func TestRenderDecodesStrictly(t *testing.T) {
	known := []string{"*v1.ConfigMap", "*v1.Secret", "*v1.Service", "*v1.Deployment", "*v1.PodDisruptionBudget", "*v2.HorizontalPodAutoscaler"}
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, values)
			if len(deployments(r)) < 4 {
				t.Fatalf("%d Deployments rendered, want the four services at least", len(deployments(r)))
			}
			for _, o := range r.objs {
				if k := strings.Fields(kindName(o))[0]; !slices.Contains(known, k) {
					t.Errorf("unexpected kind: %s", kindName(o))
				}
			}
		})
	}
}

// One worker Deployment per server in workers, hosting that server alone as
// its own bus user, each with an HPA on its calls in flight (or CPU, when
// asked).
func TestOneWorkerAndHPAPerServer(t *testing.T) {
	r := mustRender(t, valueSets["two-servers"])
	want := map[string]string{"github": "gw-mcpbus-worker-github", "jira_cloud": "gw-mcpbus-worker-jira-cloud"}
	var workers []*appsv1.Deployment
	for _, d := range deployments(r) {
		if d.Labels["app.kubernetes.io/component"] == "worker" {
			workers = append(workers, d)
		}
	}
	if len(workers) != len(want) {
		t.Fatalf("%d worker Deployments, want %d", len(workers), len(want))
	}
	for server, name := range want {
		d, ok := find(workers, name)
		if !ok {
			t.Fatalf("no worker Deployment %s", name)
		}
		c := container(d)
		if c.Args[0] != "worker" {
			t.Errorf("%s runs %v, want mcpbus worker", name, c.Args)
		}
		if got, _ := flagValue(c.Args, "servers"); got != server {
			t.Errorf("%s: --servers %q, want %q", name, got, server)
		}
		if got := envValue(c, "MCPBUS_NATS_USER"); got != "worker-"+server {
			t.Errorf("%s: bus user %q, want worker-%s", name, got, server)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("%s: replicas set under an HPA (an upgrade would reset the HPA's count)", name)
		}
		h, ok := find(hpas(r), name)
		if !ok {
			t.Fatalf("no HPA for %s", name)
		}
		if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != name || ref.APIVersion != "apps/v1" {
			t.Errorf("HPA %s scales %+v", name, ref)
		}
		if len(h.Spec.Metrics) != 1 {
			t.Fatalf("HPA %s: %d metrics", name, len(h.Spec.Metrics))
		}
		m := h.Spec.Metrics[0]
		switch server {
		case "github":
			if m.Pods == nil || m.Pods.Metric.Name != "mcpbus_worker_in_flight_calls" || m.Pods.Target.AverageValue == nil || m.Pods.Target.AverageValue.String() != "8" {
				t.Fatalf("HPA %s: %+v, want Pods mcpbus_worker_in_flight_calls averaging 8", name, m)
			}
			if sel := m.Pods.Metric.Selector; sel == nil || sel.MatchLabels["server"] != server {
				t.Errorf("HPA %s: metric selector %v, want server=%s", name, sel, server)
			}
			if h.Spec.MaxReplicas != 10 || *h.Spec.MinReplicas != 2 {
				t.Errorf("HPA %s: %d..%d replicas, want the defaults 2..10", name, *h.Spec.MinReplicas, h.Spec.MaxReplicas)
			}
		case "jira_cloud":
			if m.Resource == nil || m.Resource.Name != corev1.ResourceCPU || m.Resource.Target.AverageUtilization == nil {
				t.Fatalf("HPA %s: %+v, want the CPU fallback", name, m)
			}
			if h.Spec.MaxReplicas != 4 {
				t.Errorf("HPA %s: max %d replicas, want the override 4", name, h.Spec.MaxReplicas)
			}
			if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
				t.Errorf("%s: scaled on CPU without a CPU request", name)
			}
		}
	}
	// The target from values.
	r = mustRender(t, valueSets["external-nats"])
	if h, _ := find(hpas(r), "gw-mcpbus-worker-github"); h == nil || h.Spec.Metrics[0].Pods.Target.AverageValue.String() != "20" || *h.Spec.MinReplicas != 3 {
		t.Errorf("workers[].autoscaling.inFlightAverage / minReplicas not applied: %+v", h)
	}
	// Without autoscaling: a fixed count, no HPA.
	r = mustRender(t, valueSets["existing-secret"])
	if d, _ := find(deployments(r), "gw-mcpbus-worker-github"); d == nil || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("worker without autoscaling: %v", d)
	}
	if len(hpas(r)) != 0 {
		t.Errorf("an HPA for a worker with autoscaling off")
	}
}

// A PodDisruptionBudget for each Deployment that runs more than one pod,
// selecting exactly that Deployment's pods; none for a single pod, which a
// budget would only keep from ever being drained.
func TestPDBForEveryReplicatedDeployment(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, values)
			for _, d := range deployments(r) {
				replicas := int32(1)
				if d.Spec.Replicas != nil {
					replicas = *d.Spec.Replicas
				} else if h, ok := find(hpas(r), d.Name); ok && h.Spec.MinReplicas != nil {
					replicas = *h.Spec.MinReplicas
				}
				var covering []string
				for _, p := range pdbs(r) {
					sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
					if err != nil {
						t.Fatal(err)
					}
					if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
						covering = append(covering, p.Name)
						if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 {
							t.Errorf("PDB %s: maxUnavailable %v, want 1", p.Name, p.Spec.MaxUnavailable)
						}
					}
				}
				switch {
				case replicas > 1 && len(covering) != 1:
					t.Errorf("%s (%d replicas): covered by PDBs %v, want exactly one", d.Name, replicas, covering)
				case replicas <= 1 && len(covering) != 0:
					t.Errorf("%s (1 replica): covered by PDBs %v, want none", d.Name, covering)
				}
			}
		})
	}
}

// Every environment variable taken from a Secret names the Secret the chart
// renders (or the operator's existingSecret) and a key it has.
func TestSecretRefsResolve(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, values)
			for _, d := range deployments(r) {
				for _, e := range container(d).Env {
					ref := secretRef(e)
					if ref == nil {
						continue
					}
					if name == "existing-secret" {
						if ref.Name != "my-mcpbus-secrets" {
							t.Errorf("%s %s: Secret %s, want the existingSecret", d.Name, e.Name, ref.Name)
						}
						continue
					}
					s, ok := find(secrets(r), ref.Name)
					if !ok {
						t.Errorf("%s %s: Secret %s is not rendered", d.Name, e.Name, ref.Name)
						continue
					}
					if _, ok := s.Data[ref.Key]; !ok {
						t.Errorf("%s %s: Secret %s has no key %q", d.Name, e.Name, ref.Name, ref.Key)
					}
				}
			}
		})
	}
	// An existingSecret: the chart makes no Secret, and the keys it reads
	// from the operator's are the ones the docs list.
	r := mustRender(t, valueSets["existing-secret"])
	if len(secrets(r)) != 0 {
		t.Errorf("a Secret rendered despite existingSecret")
	}
	got := map[string]bool{}
	for _, d := range deployments(r) {
		for _, e := range container(d).Env {
			if ref := secretRef(e); ref != nil {
				got[ref.Key] = true
			}
		}
	}
	for _, k := range []string{"master-key", "salt-key", "nats-password-ingress", "nats-password-router", "nats-password-auth", "nats-password-registry", "nats-password-worker-github", "GITHUB_TOKEN"} {
		if !got[k] {
			t.Errorf("no container reads key %s of the existingSecret", k)
		}
		delete(got, k)
	}
	if len(got) > 0 {
		t.Errorf("keys read from the existingSecret beyond the documented ones: %v", got)
	}
	readme, err := os.ReadFile(chartDir + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"master-key", "salt-key", "nats-password-"} {
		if !strings.Contains(string(readme), "`"+k) {
			t.Errorf("README.md does not name the existingSecret key %s", k)
		}
	}
}

// Each process gets only the credentials it uses: its own bus password, and
// the salt key and the upstream credentials only where servers are read,
// sealed or opened (registry, workers).
func TestEachProcessItsOwnBusPassword(t *testing.T) {
	r := mustRender(t, valueSets["two-servers"])
	for _, d := range deployments(r) {
		c := container(d)
		user := envValue(c, "MCPBUS_NATS_USER")
		var pw *corev1.SecretKeySelector
		for _, e := range c.Env {
			if e.Name == "MCPBUS_NATS_PASSWORD" {
				pw = secretRef(e)
			}
			if ref := secretRef(e); ref != nil && strings.HasPrefix(ref.Key, "nats-password-") && ref.Key != "nats-password-"+user {
				t.Errorf("%s (user %s) reads %s", d.Name, user, ref.Key)
			}
		}
		if user == "" || pw == nil || pw.Key != "nats-password-"+user {
			t.Errorf("%s: bus user %q, password %v", d.Name, user, pw)
		}
		sealing := d.Labels["app.kubernetes.io/component"] == "worker" || d.Labels["app.kubernetes.io/component"] == "registry"
		if has := envValueFrom(c, "MCPBUS_SALT_KEY") != nil; has != sealing {
			t.Errorf("%s: MCPBUS_SALT_KEY present %v, want %v", d.Name, has, sealing)
		}
		if has := envValueFrom(c, "GITHUB_TOKEN") != nil; has != sealing {
			t.Errorf("%s: the upstream credential GITHUB_TOKEN present %v, want %v", d.Name, has, sealing)
		}
	}
}

// No value of any rendered Secret appears in any ConfigMap, and the chart
// refuses a config that would put a credential in one.
func TestNoSecretInConfigMaps(t *testing.T) {
	r := mustRender(t, valueSets["two-servers"])
	if len(secrets(r)) == 0 || len(configMaps(r)) == 0 {
		t.Fatal("want a Secret and a ConfigMap")
	}
	for _, s := range secrets(r) {
		for k, v := range s.Data {
			for _, cm := range configMaps(r) {
				for ck, cv := range cm.Data {
					if strings.Contains(cv, string(v)) || strings.Contains(cv, base64.StdEncoding.EncodeToString(v)) {
						t.Errorf("ConfigMap %s %s holds Secret %s key %s", cm.Name, ck, s.Name, k)
					}
				}
			}
		}
	}
	for _, bad := range []string{
		"config: {general_settings: {master_key: sk-literal}}",
		"config: {mcp_servers: {gh: {url: 'http://x/mcp', auth_type: bearer_token, auth_value: ghp_literal}}}",
		"config: {mcp_servers: [{name: gh, url: 'http://x/mcp', auth_type: oauth2, client_id: a, client_secret: literal}]}",
		"config: {general_settings: {mcp_bus_users: [{user: u, password: os.environ/P, roles: [usage]}]}}",
	} {
		if _, err := render(t, bad); err == nil {
			t.Errorf("rendered, want refused: %s", bad)
		}
	}
}

// Every pod runs as the image's non-root user with a read-only root, no
// capabilities and the runtime's seccomp profile; /tmp is its one writable
// place.
func TestPodSecurity(t *testing.T) {
	r := mustRender(t, valueSets["two-servers"])
	for _, d := range deployments(r) {
		ps := d.Spec.Template.Spec.SecurityContext
		c := container(d)
		sc := c.SecurityContext
		switch {
		case ps == nil || sc == nil:
			t.Errorf("%s: no securityContext", d.Name)
			continue
		case !isTrue(ps.RunAsNonRoot) || !isTrue(sc.RunAsNonRoot):
			t.Errorf("%s: runAsNonRoot not set", d.Name)
		case ps.RunAsUser == nil || *ps.RunAsUser != 65532 || sc.RunAsUser == nil || *sc.RunAsUser != 65532:
			t.Errorf("%s: not uid 65532", d.Name)
		case !isTrue(sc.ReadOnlyRootFilesystem):
			t.Errorf("%s: root filesystem writable", d.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: privilege escalation allowed", d.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: capabilities %+v, want drop ALL", d.Name, sc.Capabilities)
		case ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("%s: seccomp %+v", d.Name, ps.SeccompProfile)
		}
		tmp := false
		for _, m := range c.VolumeMounts {
			if m.MountPath == "/tmp" {
				for _, v := range d.Spec.Template.Spec.Volumes {
					tmp = tmp || (v.Name == m.Name && v.EmptyDir != nil)
				}
			}
		}
		if !tmp {
			t.Errorf("%s: /tmp is not an emptyDir", d.Name)
		}
	}
}

// The services join the NATS the chart installs, or nats.url; without
// either the chart refuses to render.
func TestNATSURL(t *testing.T) {
	for set, want := range map[string]string{"defaults": "nats://gw-nats:4222", "external-nats": "nats://nats.messaging.svc:4222"} {
		for _, d := range deployments(mustRender(t, valueSets[set])) {
			if got, _ := flagValue(container(d).Args, "nats"); got != want {
				t.Errorf("%s %s: --nats %q, want %q", set, d.Name, got, want)
			}
		}
	}
	if _, err := render(t, "nats: {enabled: false}"); err == nil || !strings.Contains(err.Error(), "nats.url") {
		t.Errorf("nats disabled without nats.url: %v, want a refusal naming nats.url", err)
	}
}

func secretRef(e corev1.EnvVar) *corev1.SecretKeySelector {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func envValueFrom(c corev1.Container, name string) *corev1.EnvVarSource {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom
		}
	}
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// edge.enabled adds LiteLLM's second gateway: a Deployment serving --routes
// mcp,metrics as the bus user edge, whose nats-users.yaml entry limits it
// to those families' subjects, behind a LoadBalancer that keeps callers'
// addresses. The ingress stays in-cluster (ClusterIP).
func TestEdgeIsThePublicMCPOnlyGateway(t *testing.T) {
	r := mustRender(t, valueSets["two-servers"])
	d, ok := find(deployments(r), "gw-mcpbus-edge")
	if !ok {
		t.Fatal("no Deployment gw-mcpbus-edge")
	}
	c := container(d)
	if args := strings.Join(c.Args, " "); !strings.HasPrefix(args, "ingress ") || !strings.Contains(args, "--routes mcp,metrics") {
		t.Errorf("edge args %q: want ingress --routes mcp,metrics", args)
	}
	if u := envValue(c, "MCPBUS_NATS_USER"); u != "edge" {
		t.Errorf("edge bus user %q", u)
	}
	cm, _ := find(configMaps(r), "gw-mcpbus")
	var lines []string
	for _, l := range strings.Split(cm.Data["nats-users.yaml"], "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	if !strings.Contains(strings.Join(lines, "\n"), `- user: edge
password: os.environ/MCPBUS_NATS_PASSWORD_EDGE
roles: ["ingress"]
routes: ["mcp","metrics"]`) {
		t.Errorf("nats-users.yaml has no edge user limited to mcp,metrics:\n%s", cm.Data["nats-users.yaml"])
	}
	svc, ok := find(services(r), "gw-mcpbus-edge")
	if !ok || svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("edge Service: %+v; want a LoadBalancer with externalTrafficPolicy Local", svc)
	}
	if ing, ok := find(services(r), "gw-mcpbus-ingress"); !ok || ing.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("the private ingress's Service: %+v; want ClusterIP", ing)
	}
	if _, ok := find(deployments(mustRender(t, valueSets["defaults"])), "gw-mcpbus-edge"); ok {
		t.Error("an edge without edge.enabled")
	}
}

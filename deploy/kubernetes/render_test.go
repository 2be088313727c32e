// Package kubernetes tests the Helm chart in ./mcpbus: it renders the chart
// with Helm's own library for a few value sets, decodes every object strictly
// against the Kubernetes API types (an unknown or misspelt field fails), and
// checks what an operator would notice, down to running each rendered
// Deployment's command line with the real mcpbus binary.
package kubernetes

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const chartDir = "mcpbus"

// valueSets are the installs the tests render: what the chart does alone,
// with upstream servers and their credentials, with the operator's Secret,
// and against a NATS it does not install.
var valueSets = map[string]string{
	"defaults": ``,
	"two-servers": `
config:
  general_settings:
    master_key: os.environ/LITELLM_MASTER_KEY
  mcp_servers:
    github:
      url: http://127.0.0.1:1/mcp
      auth_type: bearer_token
      auth_value: os.environ/GITHUB_TOKEN
    jira_cloud:
      url: http://127.0.0.1:1/jira/mcp
      auth_type: api_key
      auth_value: os.environ/JIRA_KEY
secrets:
  masterKey: sk-test-master-key-0123456789
  saltKey: salt-key-for-tests-0123456789
  natsPasswords: {ingress: ingress-password-0123456789}
  upstream:
    GITHUB_TOKEN: ghp-test-token-0123456789
    JIRA_KEY: jira-test-key-0123456789
workers:
  - name: github
  - name: jira_cloud
    autoscaling: {metric: cpu, maxReplicas: 4}
edge:
  enabled: true
`,
	"existing-secret": `
config:
  mcp_servers:
    github:
      url: http://127.0.0.1:1/mcp
      auth_type: bearer_token
      auth_value: os.environ/GITHUB_TOKEN
secrets:
  existingSecret: my-mcpbus-secrets
  upstream: {GITHUB_TOKEN: ""}
workers:
  - name: github
    autoscaling: {enabled: false}
    replicas: 1
`,
	"external-nats": `
nats:
  enabled: false
  url: nats://nats.messaging.svc:4222
registry: {replicas: 2}
workers:
  - name: github
    autoscaling: {inFlightAverage: "20", minReplicas: 3}
`,
}

// rendered is one render of the chart: its objects by kind and name, and the
// decoded typed objects.
type rendered struct {
	objs  []runtime.Object
	files map[string]string // template name -> text, NOTES.txt included
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// strict decodes YAML or JSON into the registered type of its kind, failing
// on unknown and duplicate fields.
var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// render renders the chart as `helm install` does (dependencies' conditions,
// values coalesced, schema checked), with the NATS chart absent: the tests
// never download it.
func render(t testing.TB, values string) (*rendered, error) {
	t.Helper()
	c := loadChart(t)
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
		t.Fatalf("values: %v", err)
	}
	if err := chartutil.ProcessDependencies(c, vals); err != nil {
		return nil, err
	}
	rv, err := util.ToRenderValues(c, vals, common.ReleaseOptions{Name: "gw", Namespace: "mcp", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(c, rv)
	if err != nil {
		return nil, err
	}
	r := &rendered{files: files}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") {
			continue
		}
		for i, doc := range splitDocs(files[n]) {
			obj, _, err := strict.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s, document %d: %v\n%s", n, i, err, doc)
			}
			r.objs = append(r.objs, obj)
		}
	}
	return r, nil
}

func mustRender(t testing.TB, values string) *rendered {
	t.Helper()
	r, err := render(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocs splits a rendered file into its YAML documents, dropping those
// that hold only comments or blanks.
func splitDocs(s string) []string {
	var out []string
	for _, d := range docSep.Split(s, -1) {
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

func all[T runtime.Object](r *rendered) []T {
	var out []T
	for _, o := range r.objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func deployments(r *rendered) []*appsv1.Deployment { return all[*appsv1.Deployment](r) }
func hpas(r *rendered) []*autoscalingv2.HorizontalPodAutoscaler {
	return all[*autoscalingv2.HorizontalPodAutoscaler](r)
}
func pdbs(r *rendered) []*policyv1.PodDisruptionBudget { return all[*policyv1.PodDisruptionBudget](r) }
func secrets(r *rendered) []*corev1.Secret             { return all[*corev1.Secret](r) }
func configMaps(r *rendered) []*corev1.ConfigMap       { return all[*corev1.ConfigMap](r) }
func services(r *rendered) []*corev1.Service           { return all[*corev1.Service](r) }

func find[T interface{ GetName() string }](list []T, name string) (T, bool) {
	for _, v := range list {
		if v.GetName() == name {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// flagValue is the value of --name in args ("" and false when absent).
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func container(d *appsv1.Deployment) corev1.Container { return d.Spec.Template.Spec.Containers[0] }

func kindName(o runtime.Object) string {
	m, ok := o.(interface{ GetName() string })
	if !ok {
		return fmt.Sprintf("%T", o)
	}
	return fmt.Sprintf("%T %s", o, m.GetName())
}

{{/* The release's name prefix, at most 63 characters. */}}
{{- define "mcpbus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "router"). */}}
{{- define "mcpbus.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mcpbus.labels" -}}
{{ include "mcpbus.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mcpbus.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Secret every container reads: the operator's, or the chart's. */}}
{{- define "mcpbus.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "mcpbus.fullname" .) -}}
{{- end -}}

{{/* Where the services join NATS: nats.url, else the NATS chart's Service
(its nats.fullname rule). */}}
{{- define "mcpbus.natsURL" -}}
{{- if .Values.nats.url -}}
{{- .Values.nats.url -}}
{{- else if not .Values.nats.enabled -}}
{{- fail "nats.enabled is false: set nats.url to the NATS the services join" -}}
{{- else -}}
{{- $name := get .Values.nats "nameOverride" | default "nats" -}}
{{- $full := "" -}}
{{- if get .Values.nats "fullnameOverride" -}}
{{- $full = get .Values.nats "fullnameOverride" -}}
{{- else if contains $name .Release.Name -}}
{{- $full = .Release.Name -}}
{{- else -}}
{{- $full = printf "%s-%s" .Release.Name $name -}}
{{- end -}}
{{- printf "nats://%s:4222" ($full | trunc 63 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{/* A worker's Kubernetes name for server s: lower case, _ as -. */}}
{{- define "mcpbus.workerKey" -}}
{{- . | lower | replace "_" "-" -}}
{{- end -}}

{{/* The workers, each the worker defaults with its own overrides, as JSON:
{"list": [...]}. Fails on a name mcpbus or Kubernetes cannot take. */}}
{{- define "mcpbus.workers" -}}
{{- $out := list -}}
{{- $seen := dict -}}
{{- range .Values.workers -}}
{{- if not (regexMatch "^[A-Za-z0-9_-]{1,50}$" (toString .name)) -}}
{{- fail (printf "workers: %q: a server name is 1-50 characters of A-Z a-z 0-9 _ -" (toString .name)) -}}
{{- end -}}
{{- $key := include "mcpbus.workerKey" .name -}}
{{- if hasKey $seen $key -}}
{{- fail (printf "workers: %q and %q would share the Deployment name worker-%s" (get $seen $key) .name $key) -}}
{{- end -}}
{{- $_ := set $seen $key .name -}}
{{- /* Not sprig's merge, which takes an override's false or 0 for unset. */ -}}
{{- $w := deepCopy $.Values.worker -}}
{{- range $k, $v := . -}}
{{- if and (kindIs "map" $v) (kindIs "map" (get $w $k)) -}}
{{- $sub := deepCopy (get $w $k) -}}
{{- range $k2, $v2 := $v -}}{{- $_ := set $sub $k2 $v2 -}}{{- end -}}
{{- $_ := set $w $k $sub -}}
{{- else -}}
{{- $_ := set $w $k $v -}}
{{- end -}}
{{- end -}}
{{- $_ := set $w "key" $key -}}
{{- $out = append $out $w -}}
{{- end -}}
{{- dict "list" $out | toJson -}}
{{- end -}}

{{/* The bus users, one per Deployment, as JSON {"list": [{user, roles, servers}]}:
each holds only its service's subjects (bus/natsauth.go). */}}
{{- define "mcpbus.busUsers" -}}
{{- $users := list -}}
{{- range $svc := list "ingress" "router" "auth" "registry" -}}
{{- $users = append $users (dict "user" $svc "roles" (list $svc)) -}}
{{- end -}}
{{- if .Values.edge.enabled -}}
{{- $users = append $users (dict "user" "edge" "roles" (list "ingress") "routes" .Values.edge.routes) -}}
{{- end -}}
{{- range (include "mcpbus.workers" . | fromJson).list -}}
{{- $users = append $users (dict "user" (printf "worker-%s" .name) "roles" (list "workers") "servers" (list .name)) -}}
{{- end -}}
{{- dict "list" $users | toJson -}}
{{- end -}}

{{/* The environment variable that holds bus user u's password in the
nats-config input (nats-users.yaml). */}}
{{- define "mcpbus.passwordEnv" -}}
{{- printf "MCPBUS_NATS_PASSWORD_%s" (. | upper | replace "-" "_") -}}
{{- end -}}

{{/* Refuses a config that would put a secret into the ConfigMap. */}}
{{- define "mcpbus.checkConfig" -}}
{{- $gs := get .Values.config "general_settings" | default dict -}}
{{- if hasKey $gs "mcp_bus_users" -}}
{{- fail "config.general_settings.mcp_bus_users: the chart makes the bus users (one per service and worker); leave it out" -}}
{{- end -}}
{{- $mk := toString (get $gs "master_key" | default "") -}}
{{- if and $mk (not (hasPrefix "os.environ/" $mk)) -}}
{{- fail "config.general_settings.master_key: a literal key would sit in a ConfigMap; write os.environ/LITELLM_MASTER_KEY and set secrets.masterKey" -}}
{{- end -}}
{{- $servers := get .Values.config "mcp_servers" | default dict -}}
{{- if kindIs "slice" $servers -}}
{{- $m := dict -}}
{{- range $i, $s := $servers -}}{{- $_ := set $m (toString (get $s "name" | default $i)) $s -}}{{- end -}}
{{- $servers = $m -}}
{{- end -}}
{{- if kindIs "map" $servers -}}
{{- range $name, $s := $servers -}}
{{- range $f := list "auth_value" "client_secret" "aws_access_key_id" "aws_secret_access_key" "aws_session_token" -}}
{{- $v := toString (get ($s | default dict) $f | default "") -}}
{{- if and $v (not (hasPrefix "os.environ/" $v)) -}}
{{- fail (printf "config.mcp_servers.%s.%s: a literal credential would sit in a ConfigMap; write os.environ/NAME and put NAME in secrets.upstream" $name $f) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
One mcpbus Deployment and the Service its metrics are scraped on. Called with
a dict: root ($), component (ingress, router, ...), name (the resource name),
user (its bus user), args (after the image's entrypoint, mcpbus), port (where
its /health/* and /metrics answer), replicas (omitted under an HPA: nil),
resources, salt (true: it seals or opens credentials), labels (extra).
*/}}
{{- define "mcpbus.deployment" -}}
{{- $root := .root -}}
{{- $sel := dict "root" $root "component" .component -}}
{{- $secret := include "mcpbus.secretName" $root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "mcpbus.labels" $sel | nindent 4 }}
    {{- with .labels }}{{ toYaml . | nindent 4 }}{{ end }}
spec:
  {{- if not (kindIs "invalid" .replicas) }}
  replicas: {{ .replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "mcpbus.selectorLabels" $sel | nindent 6 }}
      {{- with .labels }}{{ toYaml . | nindent 6 }}{{ end }}
  template:
    metadata:
      labels:
        {{- include "mcpbus.labels" $sel | nindent 8 }}
        {{- with .labels }}{{ toYaml . | nindent 8 }}{{ end }}
        {{- with $root.Values.podLabels }}{{ toYaml . | nindent 8 }}{{ end }}
      annotations:
        # A changed config or secret rolls the pods (kubectl rollout by hand
        # for an existingSecret).
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- with $root.Values.podAnnotations }}{{ toYaml . | nindent 8 }}{{ end }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets: {{ toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: mcpbus
          image: {{ include "mcpbus.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- range .args }}
            - {{ . | quote }}
            {{- end }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ .port }}
              protocol: TCP
          env:
            - name: MCPBUS_NATS_USER
              value: {{ .user | quote }}
            - name: MCPBUS_NATS_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ $secret }}
                  key: nats-password-{{ .user }}
            - name: LITELLM_MASTER_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ $secret }}
                  key: master-key
            {{- if .salt }}
            - name: MCPBUS_SALT_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ $secret }}
                  key: salt-key
            {{- end }}
            {{- /* Upstream credentials: only the processes that read the servers
                   (registry, workers); the others skip that part of the config. */}}
            {{- if .salt }}
            {{- range $key, $_ := $root.Values.secrets.upstream }}
            - name: {{ $key }}
              valueFrom:
                secretKeyRef:
                  name: {{ $secret }}
                  key: {{ $key }}
            {{- end }}
            {{- end }}
            # What `mcpbus health` probes, for a HEALTHCHECK-style exec.
            - name: MCPBUS_HEALTH_URL
              value: "http://127.0.0.1:{{ .port }}/health/liveliness"
            {{- with $root.Values.extraEnv }}{{ toYaml . | nindent 12 }}{{ end }}
          livenessProbe:
            httpGet:
              path: /health/liveliness
              port: {{ .portName }}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /health/readiness
              port: {{ .portName }}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          startupProbe:
            # A service waits up to 2 minutes for JetStream while a NATS
            # cluster forms (bus.FormingWait).
            httpGet:
              path: /health/liveliness
              port: {{ .portName }}
            periodSeconds: 5
            failureThreshold: 30
          resources:
            {{- toYaml (.resources | default dict) | nindent 12 }}
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            runAsGroup: 65532
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities:
              drop: [ALL]
            seccompProfile:
              type: RuntimeDefault
          volumeMounts:
            - name: config
              mountPath: /etc/mcpbus
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "mcpbus.fullname" $root }}
            items:
              - key: config.yaml
                path: config.yaml
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- with $root.Values.nodeSelector }}
      nodeSelector: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.topologySpreadConstraints }}
      topologySpreadConstraints: {{ toYaml . | nindent 8 }}
      {{- end }}
---
# Its metrics, for Prometheus (and so prometheus-adapter): a headless Service
# whose endpoints are the pods.
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}-metrics
  labels:
    {{- include "mcpbus.labels" $sel | nindent 4 }}
    {{- with .labels }}{{ toYaml . | nindent 4 }}{{ end }}
    mcpbus.io/metrics: "true"
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .port | quote }}
    prometheus.io/path: /metrics
spec:
  clusterIP: None
  selector:
    {{- include "mcpbus.selectorLabels" $sel | nindent 4 }}
    {{- with .labels }}{{ toYaml . | nindent 4 }}{{ end }}
  ports:
    - name: metrics
      port: {{ .port }}
      targetPort: {{ .portName }}
      protocol: TCP
{{- if and $root.Values.podDisruptionBudget.enabled (gt (int .minReplicas) 1) }}
---
# More than one replica: a voluntary disruption (a node drain, an upgrade of
# the cluster) takes at most one at a time.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "mcpbus.labels" $sel | nindent 4 }}
    {{- with .labels }}{{ toYaml . | nindent 4 }}{{ end }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "mcpbus.selectorLabels" $sel | nindent 6 }}
      {{- with .labels }}{{ toYaml . | nindent 6 }}{{ end }}
{{- end }}
{{- end -}}

{{/*
Names and labels.
*/}}
{{- define "hearsay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hearsay.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hearsay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hearsay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The labels of the app's pods, as JSON: exactly app.podLabels, or the
example app's label when that is empty (see values.yaml).
*/}}
{{- define "hearsay.podLabelsJson" -}}
{{- if .Values.app.podLabels }}
{{- toJson .Values.app.podLabels }}
{{- else }}
{{- toJson (dict "app.kubernetes.io/name" "hearsay-example") }}
{{- end }}
{{- end }}

{{/* The labels of the app's pods, as a matchLabels map. */}}
{{- define "hearsay.podLabels" -}}
{{- include "hearsay.podLabelsJson" . | fromJson | toYaml }}
{{- end }}

{{/* The same as a label selector string: k=v,k2=v2 (keys sorted). */}}
{{- define "hearsay.podSelector" -}}
{{- $pairs := list }}
{{- range $k, $v := (include "hearsay.podLabelsJson" . | fromJson) }}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{- define "hearsay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hearsay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hearsay.keySecretName" -}}
{{- default (printf "%s-gossip-key" (include "hearsay.fullname" .)) .Values.gossipKey.existingSecret }}
{{- end }}

{{- define "hearsay.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "hearsay.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The sidecar, as one entry of a pod's initContainers: a native sidecar
(restartPolicy: Always), so it is up before the app starts and outlives it
on shutdown. Use it in your own chart:

  initContainers:
    {{- include "hearsay.sidecar" . | nindent 4 }}
  volumes:
    {{- include "hearsay.volumes" . | nindent 4 }}

with this chart's values in .Values: from a parent chart that depends on
hearsay, pass the subchart's context, .Subcharts.hearsay (see the README).
*/}}
{{- define "hearsay.sidecar" -}}
- name: hearsay
  image: {{ include "hearsay.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  restartPolicy: Always
  args: ["run", "--config", "/etc/hearsay/config/hearsay.yaml"]
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    - name: POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    - name: HEARSAY_DISCOVERY
      value: kubernetes
    - name: HEARSAY_K8S_SELECTOR
      value: {{ include "hearsay.podSelector" . | quote }}
    {{- if eq .Values.discovery.mode "endpointslices" }}
    - name: HEARSAY_K8S_MODE
      value: endpointslices
    - name: HEARSAY_K8S_SERVICE
      value: {{ include "hearsay.fullname" . | quote }}
    {{- end }}
    - name: HEARSAY_GOSSIP_ADDR
      value: "0.0.0.0:{{ .Values.ports.gossip }}"
    - name: HEARSAY_API_ADDR
      value: "127.0.0.1:{{ .Values.ports.api }}"
    - name: HEARSAY_METRICS_ADDR
      value: "0.0.0.0:{{ .Values.ports.metrics }}"
    - name: HEARSAY_WEBHOOK_URL
      value: {{ .Values.webhook.url | quote }}
    {{- with .Values.webhook.probePath }}
    - name: HEARSAY_WEBHOOK_PROBE_PATH
      value: {{ . | quote }}
    {{- end }}
    - name: HEARSAY_WEBHOOK_TIMEOUT
      value: {{ .Values.webhook.timeout | quote }}
    - name: HEARSAY_WEBHOOK_RETRY_BUDGET
      value: {{ .Values.webhook.retryBudget | quote }}
    - name: HEARSAY_GOSSIP_KEY_FILE
      value: /etc/hearsay/key/primary
    - name: HEARSAY_GOSSIP_SECONDARY_KEY_FILE
      value: /etc/hearsay/key/secondary
    {{- with .Values.apiToken.existingSecret }}
    - name: HEARSAY_API_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ . }}
          key: {{ $.Values.apiToken.key }}
    {{- end }}
  ports:
    - name: gossip
      containerPort: {{ .Values.ports.gossip }}
      protocol: TCP
    - name: api
      containerPort: {{ .Values.ports.api }}
      protocol: TCP
    - name: metrics
      containerPort: {{ .Values.ports.metrics }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: metrics
    periodSeconds: {{ .Values.probes.startup.periodSeconds }}
    failureThreshold: {{ .Values.probes.startup.failureThreshold }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: metrics
    periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
    failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: metrics
    periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
    failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- include "hearsay.securityContext" . | nindent 4 }}
  volumeMounts:
    - name: hearsay-key
      mountPath: /etc/hearsay/key
      readOnly: true
    - name: hearsay-config
      mountPath: /etc/hearsay/config
      readOnly: true
{{- end }}

{{/* The volumes the sidecar mounts, as entries of a pod's volumes. */}}
{{- define "hearsay.volumes" -}}
- name: hearsay-key
  secret:
    secretName: {{ include "hearsay.keySecretName" . }}
- name: hearsay-config
  configMap:
    name: {{ include "hearsay.fullname" . }}
{{- end }}

{{/* Names, labels and the pieces both workloads share. */}}

{{- define "footprint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>", or the release name alone when it already contains the chart name. */}}
{{- define "footprint.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Resource names of the two workloads (room left for the suffix within 63 characters). */}}
{{- define "footprint.nodeName" -}}
{{- printf "%s-node" (include "footprint.fullname" . | trunc 58 | trimSuffix "-") -}}
{{- end -}}

{{- define "footprint.gridName" -}}
{{- printf "%s-grid" (include "footprint.fullname" . | trunc 58 | trimSuffix "-") -}}
{{- end -}}

{{- define "footprint.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "node"). */}}
{{- define "footprint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "footprint.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Full labels; call with (dict "ctx" $ "component" "node"). */}}
{{- define "footprint.labels" -}}
helm.sh/chart: {{ include "footprint.chart" .ctx }}
{{ include "footprint.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: footprint
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "footprint.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "footprint.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* <registry>/<repository>@<digest> or :<tag>; global.imageRegistry (parent charts) wins over image.registry. */}}
{{- define "footprint.image" -}}
{{- $repo := .Values.image.repository -}}
{{- $registry := (.Values.global).imageRegistry | default .Values.image.registry -}}
{{- if $registry -}}
{{- $repo = printf "%s/%s" $registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The grid Service URL the node pods read through the peer provider (https when web.tls). */}}
{{- define "footprint.gridUrl" -}}
{{- printf "%s://%s.%s.svc:%d" (include "footprint.scheme" .) (include "footprint.gridName" .) .Release.Namespace (int .Values.service.port) -}}
{{- end -}}

{{- define "footprint.scheme" -}}
{{- if .Values.web.tls }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* Where web.existingSecret is mounted in both pods. */}}
{{- define "footprint.webDir" -}}/etc/footprint/web{{- end -}}

{{/* Is the cluster's monitoring.coreos.com/v1 API there, or are the operator objects rendered anyway? Fails
     when monitors or rules are asked for but could not be rendered, instead of dropping them silently. */}}
{{- define "footprint.monitoringApi" -}}
{{- $wanted := or .Values.serviceMonitor.enabled .Values.prometheusRule.enabled -}}
{{- if and $wanted (not .Values.serviceMonitor.forceRender) (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}
{{- fail "serviceMonitor.enabled/prometheusRule.enabled: the cluster does not serve monitoring.coreos.com/v1 (Prometheus Operator CRDs); install them, or for helm template / GitOps pass --api-versions monitoring.coreos.com/v1 or set serviceMonitor.forceRender=true" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every Prometheus Operator object: the chart's, `release` for kube-prometheus-stack, extra ones. */}}
{{- define "footprint.operatorLabels" -}}
{{ include "footprint.labels" (dict "ctx" .ctx "component" .component) }}
{{- with .ctx.Values.serviceMonitor.release }}
release: {{ . | quote }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Name of the Secret with the grid API keys; empty when there is none. */}}
{{- define "footprint.secretName" -}}
{{- if .Values.grid.credentials.existingSecret -}}
{{- .Values.grid.credentials.existingSecret -}}
{{- else if or .Values.grid.credentials.electricitymapsToken .Values.grid.credentials.watttimePassword -}}
{{- printf "%s-grid-credentials" (include "footprint.fullname" . | trunc 46 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{/* Providers the grid pod may call, first and fallbacks, as a list. */}}
{{- define "footprint.gridChain" -}}
{{- toJson (prepend .Values.grid.fallback .Values.grid.provider | uniq) -}}
{{- end -}}

{{/* Flags both workloads share: listening, logging and grid settings that the static fallback uses too. */}}
{{- define "footprint.commonArgs" -}}
- --web.listen-address=:{{ .Values.service.port }}
{{- if .Values.web.existingSecret }}
- --web.config.file={{ include "footprint.webDir" . }}/{{ .Values.web.configKey }}
{{- end }}
- --log.level={{ .Values.log.level }}
- --log.format={{ .Values.log.format }}
{{- with .Values.grid.zone }}
- --grid.zone={{ . }}
{{- end }}
{{- with .Values.grid.region }}
- --grid.region={{ . }}
{{- end }}
- --grid.refresh-interval={{ .Values.grid.refreshInterval }}
- --grid.max-age={{ .Values.grid.maxAge }}
- --grid.accounting-signal={{ .Values.grid.accountingSignal }}
{{- if not (kindIs "invalid" .Values.grid.constantValue) }}
- --grid.constant.value={{ .Values.grid.constantValue }}
{{- end }}
{{- end -}}

{{/* Pod security context: non-root unless asked (node.runAsRoot is passed as .root). */}}
{{- define "footprint.podSecurityContext" -}}
{{- if .root }}
runAsNonRoot: false
runAsUser: 0
runAsGroup: 0
{{- else }}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context: the same for every container, root or not. */}}
{{- define "footprint.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* Probes on /healthz, which the exporter answers without credentials (server.PUBLIC_PATHS), over TLS
     when the web config serves it (the kubelet does not verify the certificate). */}}
{{- define "footprint.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: http-metrics
    scheme: {{ include "footprint.scheme" . | upper }}
  periodSeconds: 30
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /healthz
    port: http-metrics
    scheme: {{ include "footprint.scheme" . | upper }}
  periodSeconds: 10
  timeoutSeconds: 5
{{- end -}}

{{/* The web config Secret as a volume and its mount (both pods); empty without web.existingSecret. */}}
{{- define "footprint.webVolume" -}}
{{- with .Values.web.existingSecret }}
- name: web-config
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "footprint.webMount" -}}
{{- if .Values.web.existingSecret }}
- name: web-config
  mountPath: {{ include "footprint.webDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

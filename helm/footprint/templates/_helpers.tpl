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

{{- define "footprint.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The grid Service URL the node pods read through the peer provider. */}}
{{- define "footprint.gridUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "footprint.gridName" .) .Release.Namespace (int .Values.service.port) -}}
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

{{/* Probes on /healthz. */}}
{{- define "footprint.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: http-metrics
  periodSeconds: 30
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /healthz
    port: http-metrics
  periodSeconds: 10
  timeoutSeconds: 5
{{- end -}}

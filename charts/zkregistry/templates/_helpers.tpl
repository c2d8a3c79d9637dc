{{/* The chart's name, as in app.kubernetes.io/name. */}}
{{- define "zkregistry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of the release's objects: the release name if it already says zkregistry. */}}
{{- define "zkregistry.fullname" -}}
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

{{/* Labels that select the operator's pods; they never change over the release's life. */}}
{{- define "zkregistry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zkregistry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "zkregistry.labels" -}}
{{ include "zkregistry.selectorLabels" . }}
app.kubernetes.io/part-of: zkregistry
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zkregistry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zkregistry.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "zkregistry.credentialsSecret" -}}
{{- default (printf "%s-zookeeper" (include "zkregistry.fullname" .)) .Values.zookeeper.credentialsSecret }}
{{- end }}

{{- define "zkregistry.tlsSecret" -}}
{{- default (printf "%s-zookeeper-tls" (include "zkregistry.fullname" .)) .Values.zookeeper.tls.secret }}
{{- end }}

{{/* The metrics Service's name: the job label that a ServiceMonitor gives the replicas' series. */}}
{{- define "zkregistry.metricsService" -}}
{{- printf "%s-metrics" (include "zkregistry.fullname" .) }}
{{- end }}

{{/* Names, labels and the per-service configuration every template shares. */}}

{{- define "careloop.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one service's objects: <fullname>-<service>. Args: dict root name */}}
{{- define "careloop.serviceName" -}}
{{- printf "%s-%s" (include "careloop.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "careloop.selectorLabels" -}}
app.kubernetes.io/name: careloop
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "careloop.labels" -}}
{{ include "careloop.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* A service's values merged over serviceDefaults, as YAML. Args: dict root name svc */}}
{{- define "careloop.serviceConfig" -}}
{{- $merged := mergeOverwrite (deepCopy .root.Values.serviceDefaults) (deepCopy .svc) -}}
{{- toYaml $merged -}}
{{- end -}}

{{- define "careloop.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The service's config file (TOML), read through --config. Secrets come from env, never here. */}}
{{- define "careloop.configToml" -}}
{{- $root := .root -}}
[grpc]
addr = "0.0.0.0:{{ .cfg.grpcPort }}"

[metrics]
addr = "0.0.0.0:{{ .cfg.metricsPort }}"

[auth]
issuer = {{ $root.Values.auth.issuer | quote }}
audience = {{ $root.Values.auth.audience | quote }}
dev_mode = {{ $root.Values.auth.devMode }}

[events]
nats_url = {{ $root.Values.events.natsUrl | quote }}
stream = {{ $root.Values.events.stream | quote }}
subject_prefix = {{ $root.Values.events.subjectPrefix | quote }}
replicas = {{ $root.Values.events.replicas }}
duplicate_window_secs = {{ $root.Values.events.duplicateWindowSecs }}
max_age_hours = {{ $root.Values.events.maxAgeHours }}

[telemetry]
log_format = {{ $root.Values.telemetry.logFormat | quote }}
log_level = {{ $root.Values.telemetry.logLevel | quote }}
otlp_endpoint = {{ $root.Values.telemetry.otlpEndpoint | quote }}
{{- end -}}

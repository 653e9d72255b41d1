{{/* Names, labels, wiring between services and the per-service configuration every template shares. */}}

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

{{/*
The name of a service's headless Service, <fullname>-<service>-headless: it resolves to every ready
replica, for callers that balance over the replicas themselves (the gateway). Args: dict root name
*/}}
{{- define "careloop.headlessName" -}}
{{- printf "%s-headless" (include "careloop.serviceName" .) | trunc 63 | trimSuffix "-" -}}
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

{{/* Whether a service exists in values and is enabled: "true" or "". Args: dict root name */}}
{{- define "careloop.isEnabled" -}}
{{- $svc := index .root.Values.services .name | default dict -}}
{{- if $svc.enabled }}true{{ end -}}
{{- end -}}

{{/* A service's gRPC port, its own value over serviceDefaults. Args: dict root name */}}
{{- define "careloop.grpcPort" -}}
{{- $svc := index .root.Values.services .name | default dict -}}
{{- $svc.grpcPort | default .root.Values.serviceDefaults.grpcPort -}}
{{- end -}}

{{/*
Which services call which, as the code wires them: service -> list of
{section, key, service, optional, headless}. Rendered into the caller's config as
[<section>] <key> = "<scheme>://<fullname>-<service>.<namespace>.svc:<grpcPort>", or with
`headless` as "<scheme>://<fullname>-<service>-headless.<namespace>.svc:<grpcPort>" (one address
per ready replica, for a caller that balances itself).
A dependency on a disabled service fails the render, unless it is optional (then the key is left
out and the caller runs without that downstream). The section is the service's own config
section, spelled with underscores. A new caller is one more entry here.
Kept in the chart, not in values: the wiring follows the code, it is not an install choice.
*/}}
{{- define "careloop.downstreams" -}}
referrals:
  - { section: referrals, key: plans_addr, service: plans }
prior-auth:
  - { section: prior_auth, key: plans_addr, service: plans }
notifications:
  - { section: notifications, key: plans_addr, service: plans }
metrics:
  - { section: metrics, key: plans_addr, service: plans }
gateway:
  - { section: gateway, key: plans_addr, service: plans, headless: true }
  - { section: gateway, key: referrals_addr, service: referrals, headless: true }
  - { section: gateway, key: prior_auth_addr, service: prior-auth, headless: true }
  - { section: gateway, key: notifications_addr, service: notifications, headless: true }
{{- end -}}

{{/*
The enabled release services allowed to call a service, as a JSON list: its own `callers`, plus
the gateway (which composes every service's API), never itself, never a disabled one. The one
source for NetworkPolicy ingress and egress and for [auth].callers, so they cannot disagree.
Args: dict root name
*/}}
{{- define "careloop.enabledCallers" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := index $root.Values.services $name | default dict -}}
{{- $callers := list -}}
{{- range $caller := append ($svc.callers | default list) "gateway" | uniq -}}
{{- if and (ne $caller $name) (include "careloop.isEnabled" (dict "root" $root "name" $caller)) -}}
{{- $callers = append $callers $caller -}}
{{- end -}}
{{- end -}}
{{- toJson $callers -}}
{{- end -}}

{{/*
The URL other services dial for a service's gRPC API: its Service, or with `headless` its headless
Service. Args: dict root name [headless]
*/}}
{{- define "careloop.grpcUrl" -}}
{{- $scheme := ternary "https" "http" (.root.Values.tls.enabled | default false) -}}
{{- $host := ternary (include "careloop.headlessName" .) (include "careloop.serviceName" .) (.headless | default false) -}}
{{- printf "%s://%s.%s.svc:%v" $scheme $host .root.Release.Namespace (include "careloop.grpcPort" .) -}}
{{- end -}}

{{/* Where a workload's files are mounted. */}}
{{- define "careloop.tlsDir" -}}/etc/careloop/tls{{- end -}}
{{- define "careloop.trustDir" -}}/etc/careloop/trust{{- end -}}
{{- define "careloop.dbCaDir" -}}/etc/careloop/db-ca{{- end -}}
{{- define "careloop.eventsCaDir" -}}/etc/careloop/events-ca{{- end -}}
{{- define "careloop.otlpCaDir" -}}/etc/careloop/otlp-ca{{- end -}}
{{- define "careloop.issuerDir" -}}/etc/careloop/issuers/{{ . }}{{- end -}}

{{/* The Secret holding a service's certificate. Args: dict root name svc */}}
{{- define "careloop.tlsSecret" -}}
{{- .svc.tlsSecret | default (printf "%s-tls" (include "careloop.serviceName" .)) -}}
{{- end -}}

{{/* The CA bundle a workload trusts for its peers: the trust bundle while one is set, else its Secret's ca.crt. */}}
{{- define "careloop.caFile" -}}
{{- if .Values.tls.trustBundle.configMap -}}
{{- printf "%s/ca.crt" (include "careloop.trustDir" .) -}}
{{- else -}}
{{- printf "%s/ca.crt" (include "careloop.tlsDir" .) -}}
{{- end -}}
{{- end -}}

{{/*
One probe handler. With TLS the gRPC port speaks only (m)TLS, which kubelet's native gRPC probe
cannot do, so the probe runs the image's `careloop` CLI inside the pod against loopback with the
pod's own certificate; it exits 0 only when health is SERVING. Without TLS, the native gRPC probe.
Args: dict root cfg
*/}}
{{- define "careloop.probeHandler" -}}
{{- if .root.Values.tls.enabled -}}
exec:
  command:
    - /usr/local/bin/careloop
    - --addr
    - https://127.0.0.1:{{ .cfg.grpcPort }}
    - --ca
    - {{ include "careloop.caFile" .root }}
    - --cert
    - {{ include "careloop.tlsDir" .root }}/tls.crt
    - --key
    - {{ include "careloop.tlsDir" .root }}/tls.key
    - health
# A TLS handshake and a call in a fresh process; the default 1 s is tight on a busy node.
timeoutSeconds: 5
{{- else -}}
grpc: { port: {{ .cfg.grpcPort }} }
{{- end -}}
{{- end -}}

{{/*
The service's downstream addresses, as TOML sections (the gateway's own settings go into its
[gateway] next to its addresses, careloop.gatewayKeys). Fails when a required downstream is
disabled, or when the downstream's `callers` do not list this service (its NetworkPolicy and
[auth].callers would refuse every call). A section the shared config already declares (the metrics
service's own [metrics], which also holds the runtime's Prometheus `addr`) is not opened again:
TOML refuses a table declared twice, so configToml writes those keys into its own table through
careloop.downstreamKeys. Args: dict root name cfg
*/}}
{{- define "careloop.downstreamToml" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $deps := index (include "careloop.downstreams" $root | fromYaml) $name | default list -}}
{{- $sections := list -}}
{{- range $deps }}{{ $sections = append $sections .section }}{{ end -}}
{{- range $section := $sections | uniq }}
{{- if not (has $section (include "careloop.sharedSections" $root | fromJsonArray)) }}

[{{ $section }}]
{{- include "careloop.downstreamKeys" (dict "root" $root "name" $name "section" $section) }}
{{- if and (eq $name "gateway") (eq $section "gateway") }}
{{- include "careloop.gatewayKeys" $.cfg }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The tables configToml declares for every service, where a downstream key goes in place. */}}
{{- define "careloop.sharedSections" -}}
["metrics"]
{{- end -}}

{{/*
One section's downstream keys, each on its own line (no header), with the checks of
careloop.downstreamToml. Args: dict root name section
*/}}
{{- define "careloop.downstreamKeys" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $section := .section -}}
{{- $deps := index (include "careloop.downstreams" $root | fromYaml) $name | default list -}}
{{- range $dep := $deps }}
{{- if eq $dep.section $section }}
{{- $target := dict "root" $root "name" $dep.service }}
{{- if include "careloop.isEnabled" $target }}
{{- if not (has $name (include "careloop.enabledCallers" $target | fromJsonArray)) }}
{{- fail (printf "%s calls %s (%s.%s), but services.%s.callers does not list %s" $name $dep.service $section $dep.key $dep.service $name) }}
{{- end }}
{{ $dep.key }} = {{ include "careloop.grpcUrl" (dict "root" $root "name" $dep.service "headless" ($dep.headless | default false)) | toJson }}
{{- else if not $dep.optional }}
{{- fail (printf "%s needs %s (%s.%s): enable services.%s or disable services.%s" $name $dep.service $section $dep.key $dep.service $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The service's config file (TOML), read through --config. Secrets come from env, never here.
Strings go through toJson: a JSON string is a valid TOML basic string, and Go's quote is not
(its \x escapes). Args: dict root name cfg
*/}}
{{- define "careloop.configToml" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $tls := $v.tls.enabled -}}
[grpc]
addr = "0.0.0.0:{{ .cfg.grpcPort }}"
tls = {{ $tls }}
client_auth = {{ ternary (.cfg.clientAuth | default $v.tls.clientAuth) "none" $tls | toJson }}

[metrics]
addr = "0.0.0.0:{{ .cfg.metricsPort }}"
{{- include "careloop.downstreamKeys" (dict "root" $root "name" .name "section" "metrics") }}
{{- if $tls }}

[tls]
cert_file = "{{ include "careloop.tlsDir" $root }}/tls.crt"
key_file = "{{ include "careloop.tlsDir" $root }}/tls.key"
ca_file = {{ include "careloop.caFile" $root | toJson }}
reload_secs = {{ $v.tls.reloadSecs }}
{{- end }}

[auth]
dev_mode = {{ $v.auth.devMode }}
audience = {{ printf "%s%s" $v.auth.audiencePrefix .name | toJson }}
leeway_secs = {{ $v.auth.leewaySecs }}
max_token_lifetime_secs = {{ $v.auth.maxTokenLifetimeSecs }}
trust_domain = {{ $v.tls.trustDomain | toJson }}
callers = {{ include "careloop.enabledCallers" . }}
{{- range $i, $iss := $v.auth.issuers }}

[[auth.issuers]]
issuer = {{ $iss.issuer | toJson }}
discovery = {{ $iss.discovery | default false }}
jwks_url = {{ $iss.jwksUrl | default "" | toJson }}
jwks_file = {{ ternary (printf "%s/jwks.json" (include "careloop.issuerDir" $i)) "" (not (empty $iss.jwksConfigMap)) | toJson }}
kinds = {{ $iss.kinds | toJson }}
kind_claim = {{ $iss.kindClaim | default "" | toJson }}
org_id = {{ $iss.orgId | default "" | toJson }}
org_claim = {{ $iss.orgClaim | default (ternary "" "org_id" (not (empty $iss.orgId))) | toJson }}
allowed_orgs = {{ $iss.allowedOrgs | default list | toJson }}
roles_claim = {{ $iss.rolesClaim | default "roles" | toJson }}
{{- with $iss.maxTokenLifetimeSecs }}
max_token_lifetime_secs = {{ . }}
{{- end }}
refresh_secs = {{ $iss.refreshSecs | default 300 }}
ca_file = {{ ternary (printf "%s/ca.crt" (include "careloop.issuerDir" $i)) "" (not (empty $iss.caSecret)) | toJson }}
{{- end }}

[database]
# Migrations run before the service, in the init container (`--migrate-only`), as the schema
# owner: the serving container never holds the owner's credential.
migrate_at_start = false

[events]
nats_url = {{ $v.events.natsUrl | toJson }}
tls = {{ $v.events.tls }}
ca_file = {{ ternary (printf "%s/ca.crt" (include "careloop.eventsCaDir" $root)) "" (not (empty $v.events.caSecret)) | toJson }}
user = {{ .name | toJson }}
stream = {{ $v.events.stream | toJson }}
subject_prefix = {{ $v.events.subjectPrefix | toJson }}
replicas = {{ $v.events.replicas }}
duplicate_window_secs = {{ $v.events.duplicateWindowSecs }}
max_age_hours = {{ $v.events.maxAgeHours }}

[telemetry]
log_format = {{ $v.telemetry.logFormat | toJson }}
log_level = {{ $v.telemetry.logLevel | toJson }}
otlp_endpoint = {{ $v.telemetry.otlpEndpoint | toJson }}
otlp_ca_file = {{ ternary (printf "%s/ca.crt" (include "careloop.otlpCaDir" $root)) "" (not (empty $v.telemetry.caSecret)) | toJson }}
{{- include "careloop.downstreamToml" (dict "root" $root "name" .name "cfg" .cfg) }}
{{- if and (eq .name "notifications") .cfg.outbound }}
{{- include "careloop.outboundToml" .cfg.outbound }}
{{- end }}
{{- end -}}

{{/*
Notifications' outbound channels (services.notifications.outbound), as TOML sections below
[notifications]. Webhooks always, with plain-http endpoints pinned off (the binary's `allow_http`
is for its local tests, never a chart option); email and SMS only when enabled, so a disabled
channel keeps the binary's defaults. The SMTP credential and the SMS token are never written here:
the Deployment passes them through env from their Secrets. Args: the outbound block
*/}}
{{- define "careloop.outboundToml" -}}
{{- $webhooks := .webhooks | default dict }}
{{- $email := .email | default dict }}
{{- $sms := .sms | default dict }}

[notifications.webhooks]
max_attempts = {{ $webhooks.maxAttempts | default 8 | int }}
disable_after = {{ $webhooks.disableAfter | default 5 | int }}
# Endpoints are https only.
allow_http = false
{{- if $email.enabled }}

[notifications.email]
enabled = true
host = {{ $email.host | toJson }}
port = {{ $email.port | default 587 | int }}
from = {{ $email.from | toJson }}
starttls = {{ ternary $email.starttls true (kindIs "bool" $email.starttls) }}
username = {{ $email.username | default "" | toJson }}
{{- end }}
{{- if $sms.enabled }}

[notifications.sms]
enabled = true
url = {{ $sms.url | toJson }}
{{- end }}
{{- end -}}

{{/*
The ports notifications reaches at services.notifications.outbound.egress.to, as a JSON list:
egress.ports, plus the port written in sms.url while SMS is on. Args: the outbound block
*/}}
{{- define "careloop.outboundPorts" -}}
{{- $ports := list -}}
{{- range (.egress | default dict).ports }}{{ $ports = append $ports (int .) }}{{ end -}}
{{- $sms := .sms | default dict -}}
{{- if and $sms.enabled $sms.url -}}
{{- $port := regexFind ":[0-9]+$" (urlParse $sms.url).host | trimPrefix ":" -}}
{{- if $port }}{{ $ports = append $ports (int $port) }}{{ end -}}
{{- end -}}
{{- toJson ($ports | uniq) -}}
{{- end -}}

{{/*
The gateway's own keys of [gateway] (services.gateway.gateway), below its downstream addresses, and
callbacks_addr while services.gateway.callbacks is enabled. Rates are TOML floats, counts and
durations integers. Args: the service's merged values (cfg)
*/}}
{{- define "careloop.gatewayKeys" -}}
{{- $g := .gateway | default dict }}
{{- $rates := $g.rateLimits | default dict }}
{{- $org := $rates.perOrganization | default dict }}
{{- $principal := $rates.perPrincipal | default dict }}
{{- $deadlines := $g.deadlines | default dict }}
{{- $breaker := $g.circuitBreaker | default dict }}
resolve_interval_ms = {{ $g.resolveIntervalMs | int64 }}
call_timeout_ms = {{ $deadlines.callTimeoutMs | int64 }}
default_deadline_ms = {{ $deadlines.defaultMs | int64 }}
deadline_margin_ms = {{ $deadlines.marginMs | int64 }}
org_rate_per_sec = {{ include "careloop.tomlFloat" $org.requestsPerSecond }}
org_burst = {{ $org.burst | int64 }}
principal_rate_per_sec = {{ include "careloop.tomlFloat" $principal.requestsPerSecond }}
principal_burst = {{ $principal.burst | int64 }}
access_cache_ttl_ms = {{ $g.accessCacheTtlMs | int64 }}
retry_budget_ratio = {{ include "careloop.tomlFloat" $g.retryBudgetRatio }}
breaker_failures = {{ $breaker.failures | int64 }}
breaker_open_ms = {{ $breaker.openMs | int64 }}
cors_allowed_origins = {{ $g.corsAllowedOrigins | default list | toJson }}
{{- with include "careloop.callbacksPort" . }}
callbacks_addr = "0.0.0.0:{{ . }}"
{{- end }}
{{- end -}}

{{/*
The port of the gateway's HTTP door for provider callbacks (services.gateway.callbacks) while it is
enabled, else nothing. The one source for callbacks_addr, the container port, the Service port and
the NetworkPolicy rule, so they cannot disagree. Fails on a port the gateway already listens on
(the schema cannot compare two values) and, should the schema be skipped, on a missing Secret (the
gateway would refuse to start). Args: the gateway's merged values (cfg)
*/}}
{{- define "careloop.callbacksPort" -}}
{{- $cb := .callbacks | default dict -}}
{{- if $cb.enabled -}}
{{- $port := $cb.port | int -}}
{{- if not $cb.smsSecret -}}
{{- fail "services.gateway.callbacks.enabled needs services.gateway.callbacks.smsSecret (a Secret with key secret): the gateway refuses to start without it" -}}
{{- end -}}
{{- if eq $port (.grpcPort | int) -}}
{{- fail (printf "services.gateway.callbacks.port %d is the gateway's gRPC port: pick another" $port) -}}
{{- end -}}
{{- if eq $port (.metricsPort | int) -}}
{{- fail (printf "services.gateway.callbacks.port %d is the gateway's metrics port: pick another" $port) -}}
{{- end -}}
{{- $port -}}
{{- end -}}
{{- end -}}

{{/* A number as a TOML float: always with a fraction or exponent (500 -> 500.0). Args: the number */}}
{{- define "careloop.tomlFloat" -}}
{{- $s := printf "%v" (float64 .) -}}
{{- if regexMatch "^-?[0-9]+$" $s }}{{ $s }}.0{{ else }}{{ $s }}{{ end -}}
{{- end -}}

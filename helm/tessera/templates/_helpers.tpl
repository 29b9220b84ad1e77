{{/* Names, labels and shared pod settings for every Tessera object. */}}

{{- define "tessera.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tessera.fullname" -}}
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

{{/* Labels common to every object; call with (dict "ctx" $ "component" "server"). */}}
{{- define "tessera.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: tessera
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "tessera.selectorLabels" . }}
{{- end }}

{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tessera.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tessera.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "tessera.secretName" -}}
{{- default (printf "%s-secrets" (include "tessera.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* The address browsers use: from the ingress (https when it has TLS), else empty. */}}
{{- define "tessera.publicURL" -}}
{{- if .Values.ingress.enabled }}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.ingress.tls) 0)) .Values.ingress.host }}
{{- end }}
{{- end }}

{{- define "tessera.serverHost" -}}
{{- printf "%s-server.%s.svc" (include "tessera.fullname" .) .Release.Namespace }}
{{- end }}

{{- define "tessera.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "tessera.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "tessera.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tessera.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end }}

{{/*
The core's settings, shared by the server and the worker: secret key, PostgreSQL and Redis
(bundled or external), log level. Passwords come from Secrets, never from values.
*/}}
{{- define "tessera.coreEnv" -}}
- name: AUTHENTIK_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "tessera.secretName" . }}
      key: secret-key
- name: AUTHENTIK_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- with .Values.email }}
{{- if .host }}
- name: AUTHENTIK_EMAIL__HOST
  value: {{ .host | quote }}
- name: AUTHENTIK_EMAIL__PORT
  value: {{ .port | quote }}
- name: AUTHENTIK_EMAIL__USERNAME
  value: {{ .username | quote }}
{{- with .passwordSecret.name }}
- name: AUTHENTIK_EMAIL__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.email.passwordSecret.key }}
{{- end }}
- name: AUTHENTIK_EMAIL__USE_TLS
  value: {{ .useTLS | quote }}
- name: AUTHENTIK_EMAIL__USE_SSL
  value: {{ .useSSL | quote }}
- name: AUTHENTIK_EMAIL__TIMEOUT
  value: {{ .timeout | quote }}
- name: AUTHENTIK_EMAIL__FROM
  value: {{ .from | quote }}
{{- end }}
{{- end }}
{{- with include "tessera.publicURL" . }}
# Links in mail and pages, SAML and OIDC issuers, and the passkeys' relying party.
- name: AUTHENTIK_WEB__PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.postgresql.enabled }}
- name: AUTHENTIK_POSTGRESQL__HOST
  value: {{ printf "%s-postgresql" (include "tessera.fullname" .) | quote }}
- name: AUTHENTIK_POSTGRESQL__PORT
  value: "5432"
- name: AUTHENTIK_POSTGRESQL__NAME
  value: {{ .Values.postgresql.database | quote }}
- name: AUTHENTIK_POSTGRESQL__USER
  value: {{ .Values.postgresql.username | quote }}
- name: AUTHENTIK_POSTGRESQL__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tessera.fullname" . }}-postgresql
      key: password
{{- else }}
- name: AUTHENTIK_POSTGRESQL__HOST
  value: {{ required "externalPostgresql.host is required when postgresql.enabled is false" .Values.externalPostgresql.host | quote }}
- name: AUTHENTIK_POSTGRESQL__PORT
  value: {{ .Values.externalPostgresql.port | quote }}
- name: AUTHENTIK_POSTGRESQL__NAME
  value: {{ .Values.externalPostgresql.database | quote }}
- name: AUTHENTIK_POSTGRESQL__USER
  value: {{ .Values.externalPostgresql.username | quote }}
- name: AUTHENTIK_POSTGRESQL__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "externalPostgresql.passwordSecret.name is required when postgresql.enabled is false" .Values.externalPostgresql.passwordSecret.name }}
      key: {{ .Values.externalPostgresql.passwordSecret.key }}
{{- end }}
{{- if .Values.redis.enabled }}
- name: AUTHENTIK_REDIS__HOST
  value: {{ printf "%s-redis" (include "tessera.fullname" .) | quote }}
- name: AUTHENTIK_REDIS__PORT
  value: "6379"
- name: AUTHENTIK_REDIS__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tessera.fullname" . }}-redis
      key: password
{{- else if .Values.externalRedis.host }}
- name: AUTHENTIK_REDIS__HOST
  value: {{ .Values.externalRedis.host | quote }}
- name: AUTHENTIK_REDIS__PORT
  value: {{ .Values.externalRedis.port | quote }}
- name: AUTHENTIK_REDIS__DB
  value: {{ .Values.externalRedis.db | quote }}
{{- with .Values.externalRedis.passwordSecret.name }}
- name: AUTHENTIK_REDIS__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.externalRedis.passwordSecret.key }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's rules, granted by a ClusterRole or by a Role per watched namespace. */}}
{{- define "tessera.operatorRules" -}}
rules:
  - apiGroups: ["tessera.dev"]
    resources:
      - oauth2providers
      - applications
      - proxyproviders
      - outposts
      - samlproviders
      - ldapproviders
    verbs: ["get", "list", "watch", "patch", "update"]
  - apiGroups: ["tessera.dev"]
    resources:
      - oauth2providers/status
      - applications/status
      - proxyproviders/status
      - outposts/status
      - samlproviders/status
      - ldapproviders/status
    verbs: ["get", "patch", "update"]
  # Owner references with blockOwnerDeletion on the generated objects.
  - apiGroups: ["tessera.dev"]
    resources:
      - oauth2providers/finalizers
      - applications/finalizers
      - proxyproviders/finalizers
      - outposts/finalizers
      - samlproviders/finalizers
      - ldapproviders/finalizers
    verbs: ["update"]
  # Credentials, LDAP connection and outpost token Secrets are written by the operator; a clientSecretRef is read,
  # and watched (Kopf watches with list + watch) so that a rotation reaches the core at once. No
  # delete: Kubernetes collects the generated Secrets through their owner references.
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "update", "patch"]
  # A SAMLProvider's IdP metadata ConfigMap is written when it differs; the ConfigMap of an SP's
  # metadata (spMetadata.configMapRef) is read, and watched so that a change reaches the core at
  # once. No delete: Kubernetes collects the generated ConfigMaps through their owner references.
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["get", "list", "watch", "create", "update", "patch"]
  # What runs an Outpost: read, written when it differs, deleted when no longer wanted (an
  # Ingress once no provider has a host, a disabled component). Never listed or watched.
  - apiGroups: [""]
    resources: ["services"]
    verbs: ["get", "create", "update", "patch", "delete"]
  - apiGroups: ["apps"]
    resources: ["deployments"]
    verbs: ["get", "create", "update", "patch", "delete"]
  - apiGroups: ["networking.k8s.io"]
    resources: ["ingresses"]
    verbs: ["get", "create", "update", "patch", "delete"]
  # Written only where the cluster serves the kind (Traefik, the Prometheus Operator).
  - apiGroups: ["traefik.io", "traefik.containo.us"]
    resources: ["middlewares"]
    verbs: ["get", "create", "update", "patch", "delete"]
  - apiGroups: ["monitoring.coreos.com"]
    resources: ["servicemonitors"]
    verbs: ["get", "create", "update", "patch", "delete"]
  - apiGroups: ["", "events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
{{- end }}

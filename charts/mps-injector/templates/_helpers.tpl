{{/* Chart name, overridable. */}}
{{- define "mps-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object name: the release name, plus the chart name unless the release name holds it. */}}
{{- define "mps-injector.fullname" -}}
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

{{- define "mps-injector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "mps-injector.labels" -}}
helm.sh/chart: {{ include "mps-injector.chart" . }}
{{ include "mps-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mps-injector
{{- end -}}

{{- define "mps-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mps-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels of every pod the chart runs. mps-injector.io/inject=false opts the chart's own pods out
of injection; the webhook configuration also excludes the release namespace as a whole (a label
alone would not do: any tenant can set it).
*/}}
{{- define "mps-injector.podOptOutLabels" -}}
mps-injector.io/inject: "false"
{{- end -}}

{{- define "mps-injector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mps-injector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name the existing ServiceAccount the webhook runs as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mps-injector.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Name of the TLS Secret in every certificate mode. */}}
{{- define "mps-injector.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "mps-injector.fullname" .)) .Values.certificates.secretName -}}
{{- end -}}

{{/* Cluster-scoped objects (the MutatingWebhookConfiguration, ClusterRoles) are named like the release's other objects; Helm refuses a second release that would take the same names. */}}
{{- define "mps-injector.webhookConfigurationName" -}}
{{- include "mps-injector.fullname" . -}}
{{- end -}}

{{- define "mps-injector.webhookName" -}}
pods.{{ include "mps-injector.fullname" . }}.mps-injector.io
{{- end -}}

{{/* Where the webhook reads its configuration and TLS files. */}}
{{- define "mps-injector.configDir" -}}/etc/mps-injector{{- end -}}
{{- define "mps-injector.tlsDir" -}}/etc/mps-injector/tls{{- end -}}
{{- define "mps-injector.clientCaDir" -}}/etc/mps-injector/client-ca{{- end -}}

{{/* The node's MPS directories as the policies compare them: cleaned, and under both /run and /var/run (one directory on the node). */}}
{{- define "mps-injector.mpsHostDirectories" -}}
{{- $dirs := list -}}
{{- range (list .Values.config.injection.hostPipeDirectory .Values.config.injection.hostShmDirectory) -}}
{{- $d := clean . -}}
{{- $dirs = append $dirs $d -}}
{{- if hasPrefix "/run/" $d -}}{{- $dirs = append $dirs (printf "/var%s" $d) -}}{{- end -}}
{{- if hasPrefix "/var/run/" $d -}}{{- $dirs = append $dirs (trimPrefix "/var" $d) -}}{{- end -}}
{{- end -}}
{{- toJson (uniq $dirs) -}}
{{- end -}}

{{/* cert-manager names. */}}
{{- define "mps-injector.certManager.certificateName" -}}{{ include "mps-injector.fullname" . }}-serving{{- end -}}
{{- define "mps-injector.certManager.rootIssuerName" -}}{{ include "mps-injector.fullname" . }}-selfsigned{{- end -}}
{{- define "mps-injector.certManager.caCertificateName" -}}{{ include "mps-injector.fullname" . }}-ca{{- end -}}
{{- define "mps-injector.certManager.caIssuerName" -}}{{ include "mps-injector.fullname" . }}-ca{{- end -}}

{{/*
The webhook's configuration file: the user's config values plus what the chart decides
(TLS paths, cluster mode, namespace, certificate and webhook object names).
*/}}
{{- define "mps-injector.configFile" -}}
{{- $c := deepCopy .Values.config -}}
{{- $_ := set $c.server "tlsCertFile" (printf "%s/tls.crt" (include "mps-injector.tlsDir" .)) -}}
{{- $_ := set $c.server "tlsKeyFile" (printf "%s/tls.key" (include "mps-injector.tlsDir" .)) -}}
{{- $_ := set $c.server "clientCAFile" (ternary (printf "%s/%s" (include "mps-injector.clientCaDir" .) .Values.mutualTls.clientCA.key) "" .Values.mutualTls.enabled) -}}
{{- $_ := set $c.cluster "enabled" true -}}
{{- $_ := set $c.cluster "namespace" .Release.Namespace -}}
{{- $daemon := $c.cluster.mpsDaemon -}}
{{- $_ := set $daemon "required" (ternary .Values.mpsDaemon.enabled $daemon.required (kindIs "invalid" $daemon.required)) -}}
{{- if not $daemon.namespace -}}{{- $_ := set $daemon "namespace" .Release.Namespace -}}{{- end -}}
{{- if not $daemon.labelSelector -}}
{{- $_ := set $daemon "labelSelector" (printf "app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s,app.kubernetes.io/component=mps-daemon" (include "mps-injector.name" .) .Release.Name) -}}
{{- end -}}
{{- $certMode := ternary "self-managed" "files" (eq .Values.certificates.mode "self-managed") -}}
{{- $certs := dict "mode" $certMode "secretName" (include "mps-injector.tlsSecretName" .) "serviceName" (include "mps-injector.fullname" .) "mutatingWebhookConfigurationName" (include "mps-injector.webhookConfigurationName" .) -}}
{{- if eq .Values.certificates.mode "self-managed" -}}
{{- $_ := set $certs "caValidityDays" .Values.certificates.selfManaged.caValidityDays -}}
{{- $_ := set $certs "leafValidityDays" .Values.certificates.selfManaged.leafValidityDays -}}
{{- $_ := set $certs "renewAtFraction" .Values.certificates.selfManaged.renewAtFraction -}}
{{- end -}}
{{- $_ := set $c "certificates" $certs -}}
{{- toYaml $c -}}
{{- end -}}

{{/* Checks across values that the JSON schema cannot express; each message says what to change. */}}
{{- define "mps-injector.validate" -}}
{{- if and (eq .Values.certificates.mode "secret") (not .Values.certificates.secretName) -}}
{{- fail "certificates.mode is \"secret\" but certificates.secretName is empty: name the kubernetes.io/tls Secret (keys tls.crt and tls.key) in the release namespace" -}}
{{- end -}}
{{- if and (eq .Values.certificates.mode "secret") (not .Values.certificates.caBundle) -}}
{{- fail "certificates.mode is \"secret\" but certificates.caBundle is empty: set it to the base64 PEM CA that signed the Secret's certificate (e.g. the caBundle printed by `mps-injector certs generate`)" -}}
{{- end -}}
{{- if and (eq .Values.certificates.mode "secret") .Values.certificates.caBundle (not (contains "-----BEGIN CERTIFICATE-----" (b64dec .Values.certificates.caBundle))) -}}
{{- fail "certificates.caBundle is not a base64 PEM certificate: give base64 of the CA's PEM file in one line, e.g. \"$(base64 -w0 < ca.crt)\"" -}}
{{- end -}}
{{- if and .Values.certificates.caBundle (ne .Values.certificates.mode "secret") -}}
{{- fail (printf "certificates.caBundle is set but certificates.mode is %q: the caBundle is only used with mode \"secret\"; remove it or switch the mode" .Values.certificates.mode) -}}
{{- end -}}
{{- if ge (int .Values.config.server.admissionTimeoutMs) (mul (int .Values.webhook.timeoutSeconds) 1000 | int) -}}
{{- fail (printf "config.server.admissionTimeoutMs (%d) must be below webhook.timeoutSeconds (%d s): the API server would give up before the webhook answers. Lower the first or raise the second" (int .Values.config.server.admissionTimeoutMs) (int .Values.webhook.timeoutSeconds)) -}}
{{- end -}}
{{- if gt (int .Values.config.placement.minThreadPercent) (int .Values.config.placement.maxThreadPercent) -}}
{{- fail (printf "config.placement.minThreadPercent (%d) is above config.placement.maxThreadPercent (%d): make the minimum at most the maximum" (int .Values.config.placement.minThreadPercent) (int .Values.config.placement.maxThreadPercent)) -}}
{{- end -}}
{{- if and (eq .Values.config.metrics.source "exporters") (empty .Values.config.metrics.exporterUrls) -}}
{{- fail "config.metrics.source is \"exporters\" but config.metrics.exporterUrls is empty: list the dcgm-exporter /metrics URLs, or use source \"discovery\"" -}}
{{- end -}}
{{- if and .Values.mutualTls.enabled (eq (empty .Values.mutualTls.clientCA.secretName) (empty .Values.mutualTls.clientCA.configMapName)) -}}
{{- fail "mutualTls.enabled is true: set exactly one of mutualTls.clientCA.secretName and mutualTls.clientCA.configMapName to the object in the release namespace that holds the client CA certificate" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (empty .Values.networkPolicy.ingressFrom) -}}
{{- fail "networkPolicy.enabled is true but networkPolicy.ingressFrom is empty: list the peers that may reach the webhook (at least the API server's addresses as an ipBlock), or the policy would block every admission" -}}
{{- end -}}
{{- if and .Values.mpsHostPathPolicy.enabled (not (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "mpsHostPathPolicy.enabled needs Kubernetes 1.30 or newer (ValidatingAdmissionPolicy v1); this cluster is %s. Set mpsHostPathPolicy.enabled=false, and keep pods out of the MPS host directories another way" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if and (has "Deny" .Values.mpsHostPathPolicy.validationActions) (has "Warn" .Values.mpsHostPathPolicy.validationActions) -}}
{{- fail "mpsHostPathPolicy.validationActions cannot hold both Deny and Warn (the API server refuses the pair): choose [Deny], or [Warn] to try the policy first" -}}
{{- end -}}
{{- if and (eq .Values.config.metrics.source "prometheus") (not .Values.config.metrics.prometheusUrl) -}}
{{- fail "config.metrics.source is \"prometheus\" but config.metrics.prometheusUrl is empty: set the Prometheus base URL, or use source \"discovery\"" -}}
{{- end -}}
{{- end -}}

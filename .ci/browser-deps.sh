#!/usr/bin/env bash
# The browser tests' own set-up (make test runs it): Debian's chromium and chromedriver, and a CJK font
# so Chinese pages render in screenshots. Never a browser download. Tolerates a machine where they are
# installed already, and one where they cannot be (not root, no apt): the browser tests then skip and say so.
set -u
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then need+=(fonts-noto-cjk); fi
# Chromium's own Chinese strings (the file picker's 选择文件), so screenshots show what an official's browser shows.
[ -e /usr/lib/chromium/locales/zh-CN.pak ] || need+=(chromium-l10n)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "browser tests: missing ${need[*]} and cannot apt-get install them here; those tests will be skipped" >&2
  exit 0
fi
echo "browser tests: installing ${need[*]} (apt-get)" >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
  || echo "browser tests: apt-get install ${need[*]} failed; those tests will be skipped" >&2
exit 0

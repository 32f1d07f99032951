#!/bin/sh
# porta-desktop.exe under Wine, for screenshot.sh (PORTA_DESKTOP): the
# Windows app is $PORTA_DESKTOP_EXE, the prefix $WINEPREFIX.
exec "$(dirname "$0")/../../scripts/wine-run" "$PORTA_DESKTOP_EXE" "$@"

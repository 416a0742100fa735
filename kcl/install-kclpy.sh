#!/bin/sh
# Installs amazon-kclpy (the Python side of KCL multilang) without it reaching for jars online.
#
# Why: PyPI has only an sdist, whose build copies the KCL jars listed in its own pom.xml from
# $KCL_MVN_REPO_SEARCH_URL (default: Maven Central over plain urllib) and fails if any is
# missing. We let mvn put exactly those jar versions into the local Maven repository first,
# then point the build at it with a file:// URL. The jars kclpy bundles are not the ones the
# daemon runs (kcl/pom.xml decides that); the build just insists on having them.
#
# kclpy 3.1.3 lists KCL 3.1.3. (kclpy 3.2.0 lists KCL 3.5.3, which our Maven registry lacks.)
# Usage: PIP=/path/to/venv/bin/pip kcl/install-kclpy.sh
set -eu
PIP=${PIP:-pip}
MVN=${MVN:-mvn -q -B -Dstyle.color=never}
VERSION=${KCLPY_VERSION:-3.1.3}
REPO=${M2_REPO:-$HOME/.m2/repository}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PIP" download --quiet --disable-pip-version-check --no-deps --no-binary :all: -d "$work" "amazon-kclpy==$VERSION"
tar -xzf "$work/amazon_kclpy-$VERSION.tar.gz" -C "$work"
# kclpy's pom.xml only lists dependencies; give it coordinates so that mvn can resolve them.
sed 's#<modelVersion>4.0.0</modelVersion>#&<groupId>local</groupId><artifactId>kclpy-jars</artifactId><version>0</version>#' \
    "$work/amazon_kclpy-$VERSION/pom.xml" > "$work/pom.xml"
# Maven 3.8 prints bare colour resets even in batch mode: its output is shown on failure only.
$MVN -f "$work/pom.xml" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:resolve \
    > "$work/mvn.log" 2>&1 || { sed 's/\x1b\[[0-9;]*m//g' "$work/mvn.log" >&2; exit 1; }
KCL_MVN_REPO_SEARCH_URL="file://$REPO/" "$PIP" install --quiet --disable-pip-version-check "$work/amazon_kclpy-$VERSION.tar.gz"

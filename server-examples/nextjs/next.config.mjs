/** @type {import('next').NextConfig} */
const nextConfig = {
  // An API-only app: no telemetry of its own, no "X-Powered-By" header.
  poweredByHeader: false,
};

export default nextConfig;

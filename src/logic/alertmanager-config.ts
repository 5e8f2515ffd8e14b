// The shipped Alertmanager configuration pointed at a local webhook: its routes, grouping and
// inhibitions kept, every receiver replaced by a webhook at `{url}/{receiver}`, the waits before a
// notification shortened (a demo or a test cannot wait Alertmanager's half minute).

export interface AlertmanagerRoute {
  receiver?: string;
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: AlertmanagerRoute[];
  [key: string]: unknown;
}

export interface AlertmanagerConfig {
  route: AlertmanagerRoute;
  receivers: { name: string; [integration: string]: unknown }[];
  [key: string]: unknown;
}

export function withWebhookReceivers(
  config: AlertmanagerConfig,
  webhookUrl: string,
  waits: { groupWait: string; groupInterval: string },
): AlertmanagerConfig {
  const shorten = (route: AlertmanagerRoute, top: boolean): AlertmanagerRoute => {
    const next: AlertmanagerRoute = { ...route };
    if (route.group_wait !== undefined || top) next.group_wait = waits.groupWait;
    if (route.group_interval !== undefined || top) next.group_interval = waits.groupInterval;
    if (route.routes) next.routes = route.routes.map((r) => shorten(r, false));
    return next;
  };
  return {
    ...config,
    route: shorten(config.route, true),
    receivers: config.receivers.map((r) => ({
      name: r.name,
      webhook_configs: [{ url: `${webhookUrl}/${r.name}`, send_resolved: true }],
    })),
  };
}

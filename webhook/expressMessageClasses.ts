/**
 * Request and response classes for the HTTP server in front of an express app, whose
 * instances are created with the app's own prototypes (app.request, app.response).
 *
 * Express gives every request and response those prototypes with Object.setPrototypeOf as
 * it starts handling them. Changing the prototype of a live object sends V8 down slow paths
 * for everything Node's HTTP code later does with it: measured on the webhook, about 50 µs
 * per request, more than a third of what express costs. When the server builds them with
 * the right prototype in the first place, express's setPrototypeOf finds the prototype
 * already in place and changes nothing. Express behaves exactly as before either way.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Express } from 'express';

export interface ExpressMessageClasses {
  IncomingMessage?: typeof IncomingMessage;
  ServerResponse?: typeof ServerResponse;
}

/**
 * Spread the result into http(s).createServer's options, and pass the app as request listener.
 * Empty (Node's own classes, express swaps prototypes as usual) where Node's constructors
 * cannot be called on an object made elsewhere.
 */
export function expressMessageClasses(app: Express): ExpressMessageClasses {
  if (!callableOnAnyObject(IncomingMessage) || !callableOnAnyObject(ServerResponse)) return {};
  requireInherits(app.request, IncomingMessage, 'request');
  requireInherits(app.response, ServerResponse, 'response');

  // Node's constructors run on an object that `new` created with the app's prototype. (Reflect.construct
  // with a new target would do the same for classes, but V8 then builds every instance on a slow path.)
  function ExpressRequest(this: IncomingMessage, socket: Socket): void {
    Reflect.apply(IncomingMessage, this, [socket]);
  }
  ExpressRequest.prototype = app.request;
  function ExpressResponse(this: ServerResponse, req: IncomingMessage, options?: unknown): void {
    Reflect.apply(ServerResponse, this, [req, options]);
  }
  ExpressResponse.prototype = app.response;
  return {
    IncomingMessage: ExpressRequest as unknown as typeof IncomingMessage,
    ServerResponse: ExpressResponse as unknown as typeof ServerResponse,
  };
}

/** Plain constructor functions (what Node ships) can be applied to any object; `class` constructors cannot. */
function callableOnAnyObject(constructor: abstract new (...args: never[]) => object): boolean {
  return !Function.prototype.toString.call(constructor).startsWith('class');
}

function requireInherits(prototype: object, base: abstract new (...args: never[]) => object, what: string): void {
  if (!(prototype instanceof base)) {
    throw new TypeError(`the express app's ${what} object does not inherit from http.${base.name}; pass an app made by express()`);
  }
}
